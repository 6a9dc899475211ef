/**
 * PyKMIP test-server harness (OPS.md §5): a throw-away CA and certificates made with the openssl
 * CLI, a server.conf on a free loopback port with its sqlite database in a temp dir, and
 * `/usr/bin/pykmip-server` started, stopped and restarted on demand. Test keys are created through
 * PyKMIP's own client (test/support/pykmip/admin.py) under the same identity (CN) tas uses,
 * because PyKMIP's default policy makes symmetric keys and secret data owner-only.
 *
 * Missing tools (openssl, python3-pykmip) make start() throw: the test fails, it never skips.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PYKMIP_SERVER = '/usr/bin/pykmip-server';
export const SYSTEM_PYTHON = '/usr/bin/python3';
const ADMIN_SCRIPT = join(__dirname, 'pykmip', 'admin.py');

/** ClientIdentity is one client certificate + key (paths). */
export interface ClientIdentity {
  readonly cert: string;
  readonly key: string;
}

/** PyKmipCerts lists every file the harness generated. */
export interface PyKmipCerts {
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** CN=tas, EKU clientAuth, signed by ca: the identity tas and admin.py use. */
  readonly client: ClientIdentity;
  /** CN=tas, EKU clientAuth, but signed by an unrelated CA. */
  readonly otherCa: ClientIdentity;
  /** CN=tas, signed by ca, EKU serverAuth only (no clientAuth). */
  readonly noClientAuth: ClientIdentity;
  /** CN=other-tenant, EKU clientAuth, signed by ca: a valid identity that owns nothing. */
  readonly otherTenant: ClientIdentity;
  /** The unrelated CA itself (to make tas distrust the server). */
  readonly otherCaCert: string;
}

/** CreatedObject is one object admin.py created, with its key material in hex. */
export interface CreatedObject {
  readonly uid: string;
  readonly hex?: string;
}

export type AdminOp =
  | { op: 'create_aes'; name: string; bits?: number; activate?: boolean; policy?: string }
  | { op: 'register_secret'; name: string; hex: string; activate?: boolean }
  | { op: 'destroy'; uid: string };

function run(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`${cmd} could not run: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** freePort asks the kernel for a free loopback port (closed again before use; small race, fine in tests). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** makeCerts writes an ECDSA P-256 CA, server and client certificates into dir. */
export function makeCerts(dir: string): PyKmipCerts {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const ca = (name: string): void => {
    run('openssl', ['req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '7', '-subj', `/CN=${name}-test-ca`], { cwd: dir });
  };
  const leaf = (name: string, cn: string, caName: string, ext: string): void => {
    run('openssl', ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], { cwd: dir });
    writeFileSync(join(dir, `${name}.ext`), ext);
    run(
      'openssl',
      ['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '7', '-extfile', `${name}.ext`],
      { cwd: dir },
    );
  };
  ca('ca');
  ca('otherca');
  leaf('server', 'localhost', 'ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n');
  leaf('client', 'tas', 'ca', 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n');
  leaf('foreign', 'tas', 'otherca', 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n');
  leaf('tenant2', 'other-tenant', 'ca', 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n');
  leaf('noeku', 'tas', 'ca', 'extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n');
  const p = (f: string): string => join(dir, f);
  return {
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    client: { cert: p('client.crt'), key: p('client.key') },
    otherCa: { cert: p('foreign.crt'), key: p('foreign.key') },
    noClientAuth: { cert: p('noeku.crt'), key: p('noeku.key') },
    otherTenant: { cert: p('tenant2.crt'), key: p('tenant2.key') },
    otherCaCert: p('otherca.crt'),
  };
}

/** PyKmipServer is one running (or stopped) PyKMIP server with its files. */
export class PyKmipServer {
  readonly host = '127.0.0.1';
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** starts counts server starts (restart tests count, not clock). */
  starts = 0;

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly certs: PyKmipCerts,
  ) {}

  /** create makes the temp dir, certificates and configs; call start() next. */
  static async create(): Promise<PyKmipServer> {
    if (!existsSync(PYKMIP_SERVER)) throw new Error(`${PYKMIP_SERVER} is missing: apt-get install python3-pykmip (listed in .ci/apt-packages)`);
    const dir = mkdtempSync(join(tmpdir(), 'tas-pykmip-'));
    const certs = makeCerts(dir);
    const port = await freePort();
    const s = new PyKmipServer(dir, port, certs);
    // logging_level INFO: at DEBUG PyKMIP logs whole TTLV messages, key material included.
    writeFileSync(
      join(dir, 'server.conf'),
      [
        '[server]',
        `hostname=${s.host}`,
        `port=${port}`,
        `certificate_path=${certs.serverCert}`,
        `key_path=${certs.serverKey}`,
        `ca_path=${certs.ca}`,
        'auth_suite=TLS1.2',
        `policy_path=${join(dir, 'policies')}`,
        'enable_tls_client_auth=True',
        'logging_level=INFO',
        `database_path=${join(dir, 'pykmip.db')}`,
        '',
      ].join('\n'),
    );
    run('mkdir', ['-p', join(dir, 'policies')]);
    writeFileSync(s.clientConfig, s.clientIni());
    return s;
  }

  /** clientConfig is a pykmip.conf-style file for PyKMIP's client (and, extended, for tas). */
  get clientConfig(): string {
    return join(this.dir, 'pykmip.conf');
  }

  get logFile(): string {
    return join(this.dir, 'server.log');
  }

  /** clientIni renders a `[client]` section for an identity; `extra` adds or overrides keys. */
  clientIni(id: ClientIdentity = this.certs.client, extra: Record<string, string | number> = {}, ca = this.certs.ca): string {
    const base: Record<string, string | number> = {
      host: this.host,
      port: this.port,
      certfile: id.cert,
      keyfile: id.key,
      ca_certs: ca,
      cert_reqs: 'CERT_REQUIRED',
      ssl_version: 'PROTOCOL_TLSv1_2',
      do_handshake_on_connect: 'True',
      suppress_ragged_eofs: 'True',
      ...extra,
    };
    const lines = ['[client]', ...Object.entries(base).map(([k, v]) => `${k}=${v}`), ''];
    return lines.join('\n');
  }

  /**
   * writePolicy adds a PyKMIP operation policy file (policy_path) before start(): `{name:
   * {preset: {OBJECT_TYPE: {OPERATION: ALLOW_ALL|ALLOW_OWNER|DISALLOW_ALL}}}}`.
   */
  writePolicy(file: string, policies: Record<string, unknown>): void {
    writeFileSync(join(this.dir, 'policies', file), JSON.stringify(policies));
  }

  /** writeClientConfig writes a config file for tas into the temp dir and returns its path. */
  writeClientConfig(name: string, id?: ClientIdentity, extra: Record<string, string | number> = {}, ca?: string): string {
    const p = join(this.dir, name);
    writeFileSync(p, this.clientIni(id, extra, ca));
    return p;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  /** start launches the server and waits (bounded) for its bind line in the log. */
  async start(): Promise<void> {
    if (this.proc) return;
    const logBefore = existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8').length : 0;
    // Own process group: PyKMIP forks a policy-directory monitor process, which must go with it.
    // stderr goes to a file, not a pipe, so that no stray handle keeps the test process alive.
    const errFile = join(this.dir, 'server.stderr');
    const errFd = openSync(errFile, 'a');
    const proc = spawn(PYKMIP_SERVER, ['-f', join(this.dir, 'server.conf'), '-l', this.logFile], {
      stdio: ['ignore', 'ignore', errFd],
      detached: true,
      env: { ...process.env, PYTHONWARNINGS: 'ignore' },
    });
    closeSync(errFd);
    const stderrText = (): string => (existsSync(errFile) ? readFileSync(errFile, 'utf8').slice(-4096) : '');
    let exitCode: number | null | undefined;
    this.exited = new Promise((resolve) => proc.on('exit', (code) => {
      exitCode = code;
      resolve();
    }));
    proc.on('error', () => undefined);
    this.proc = proc;
    // If the test process ends without stop() (crash, mocha bail), take the server group along.
    const reap = (): void => {
      try {
        if (proc.pid !== undefined) process.kill(-proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    process.once('exit', reap);
    void this.exited.then(() => process.removeListener('exit', reap));
    this.starts++;
    // Poll the log for the bind line: at most 300 polls of 50 ms.
    for (let i = 0; i < 300; i++) {
      if (exitCode !== undefined) {
        this.proc = undefined;
        throw new Error(`pykmip-server exited with ${exitCode}: ${stderrText()}`);
      }
      if (existsSync(this.logFile)) {
        const log = readFileSync(this.logFile, 'utf8').slice(logBefore);
        if (log.includes('successfully bound socket handler')) return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.stop();
    throw new Error(`pykmip-server did not bind ${this.host}:${this.port}: ${stderrText()}`);
  }

  /** stop sends SIGTERM and waits for the exit (SIGKILL if it does not come). */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.proc = undefined;
    const group = (sig: NodeJS.Signals): void => {
      try {
        if (proc.pid !== undefined) process.kill(-proc.pid, sig);
      } catch {
        // already gone
      }
    };
    group('SIGTERM');
    const killer = setTimeout(() => group('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(killer);
    // The forked monitor may outlive the main process by a moment; make sure the group is gone.
    group('SIGKILL');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** admin runs admin.py operations through PyKMIP's own client (as the `tas` identity). */
  admin(ops: AdminOp[], version: '1.2' | '1.4' | '2.0' = '1.2', as?: ClientIdentity): CreatedObject[] {
    // Another identity (`as`) owns what it creates: PyKMIP's owner-only policies then keep it from tas.
    const config = as === undefined ? this.clientConfig : this.writeClientConfig(`admin-${Date.now()}.conf`, as);
    const out = run(SYSTEM_PYTHON, ['-W', 'ignore', ADMIN_SCRIPT], { input: JSON.stringify({ config, version, ops }) });
    return JSON.parse(out.trim().split('\n').pop()!) as CreatedObject[];
  }

  /** destroy stops the server and removes the temp dir. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
