/**
 * `tas cert ca init|show`: the CA hierarchy of certify (docs/certify.md).
 *
 *   init  create (--new-root) or import (--root-key/--root-cert) the offline root, have the
 *         configured signer plugin (TAS_CERT_PLUGIN, TAS_CERT_CONFIG_FILE) generate the issuing CA
 *         key where it keeps it (in the HSM for tas_cert_pkcs11), and sign the issuing CA
 *         certificate with the root. The root key is read here and never handed to the plugin;
 *         move it offline afterwards. Nothing existing is overwritten (O_EXCL).
 *   show  open the signer as the daemon would, check the chain, sign a probe (the startup
 *         self-test) and print the chain and where the key lives (CKA_EXTRACTABLE, …).
 * Exit codes: 0 ok, 1 the self-test failed, 2 usage or configuration error, 3 internal error.
 */
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import pino from 'pino';
import { CliError, defineCommand, EXIT, group, toolConfig } from '../cli-kit';
import { makeIssuing, makeRoot, newCaKey, suiteForKey, writeExclusive } from './ca';
import { pem, unpem } from './der';
import { viewCertificate } from './profile';
import { findSignerPlugin, isCertSignerError, SignerService } from './signer';

const quiet = () => pino({ level: 'warn' }, pino.destination(2));

function print(format: string, obj: Record<string, unknown>, text: string): void {
  process.stdout.write(format === 'json' ? `${JSON.stringify(obj, null, 2)}\n` : text);
}

function certSummary(der: Buffer): Record<string, unknown> {
  const x = new X509Certificate(der);
  const k = x.publicKey;
  return {
    subject: x.subject.replace(/\n/g, ', '), issuer: x.issuer.replace(/\n/g, ', '), not_before: x.validFrom, not_after: x.validTo,
    key: k.asymmetricKeyType === 'ec' ? `EC ${k.asymmetricKeyDetails?.namedCurve}` : `RSA ${k.asymmetricKeyDetails?.modulusLength}`,
    sha256: createHash('sha256').update(der).digest('hex'),
  };
}

interface InitArgs {
  config?: string;
  plugin?: string;
  rootKey: string;
  rootCert: string;
  newRoot: boolean;
  keyType: 'EC' | 'RSA';
  keySize: number;
  rootCn: string;
  caCn: string;
  rootDays: number;
  caDays: number;
  format: string;
}

const init = defineCommand<InitArgs>({
  command: 'init',
  describe: 'Create or import the offline root and create the issuing CA key with the signer plugin',
  builder: (y) =>
    y
      .example('$0 cert init --new-root --root-key /root/root-ca.key --root-cert /root/root-ca.crt', 'a new offline root and an issuing CA key held by the signer plugin')
      .option('config', { type: 'string', describe: 'Config file (default $TAS_CONFIG_FILE)' })
      .option('plugin', { type: 'string', describe: 'Signer plugin (default TAS_CERT_PLUGIN)' })
      .option('root-key', { type: 'string', demandOption: true, describe: 'Root CA private key (PEM): written with --new-root, else read' })
      .option('root-cert', { type: 'string', demandOption: true, describe: 'Root CA certificate (PEM): written with --new-root, else read' })
      .option('new-root', { type: 'boolean', default: false, describe: 'Generate a new root (files must not exist)' })
      .option('key-type', { choices: ['EC', 'RSA'], default: 'EC', describe: 'Key type of new keys: EC P-384 (ECDSA-SHA384) or RSA (RSA-PSS-SHA256)' })
      .option('key-size', { type: 'number', default: 3072, describe: 'RSA key size (≥ 3072)' })
      .option('root-cn', { type: 'string', default: 'tas workload root CA' })
      .option('ca-cn', { type: 'string', default: 'tas workload issuing CA' })
      .option('root-days', { type: 'number', default: 3650 })
      .option('ca-days', { type: 'number', default: 365 })
      .option('format', { choices: ['text', 'json'], default: 'text' }) as never,
  async run(argv) {
    const cfg = toolConfig(argv.config);
    if (argv.keyType === 'RSA' && argv.keySize < 3072) throw new CliError(EXIT.USAGE, '--key-size must be at least 3072');
    if (!(argv.caDays > 0 && argv.rootDays >= argv.caDays)) throw new CliError(EXIT.USAGE, '--ca-days must be positive and not exceed --root-days');
    let rootKey;
    let rootDer: Buffer;
    if (argv.newRoot) {
      for (const f of [argv.rootKey, argv.rootCert]) if (existsSync(f)) throw new CliError(EXIT.USAGE, `${f} exists: --new-root never overwrites`);
      const k = newCaKey(argv.keyType, argv.keySize);
      rootKey = k.privateKey;
      rootDer = makeRoot(rootKey, argv.rootCn, argv.rootDays);
      writeExclusive(argv.rootKey, rootKey.export({ type: 'pkcs8', format: 'pem' }) as string);
      writeExclusive(argv.rootCert, pem('CERTIFICATE', rootDer));
    } else {
      try {
        rootKey = createPrivateKey(readFileSync(argv.rootKey));
        const certs = unpem(readFileSync(argv.rootCert, 'latin1'), 'CERTIFICATE');
        if (certs.length !== 1) throw new Error(`${argv.rootCert} must hold exactly one certificate`);
        rootDer = certs[0]!;
        const x = new X509Certificate(rootDer);
        if (!x.ca || !x.checkIssued(x) || !x.verify(x.publicKey)) throw new Error('the root certificate is not a self-signed CA certificate');
        if (!createPublicKey(rootKey).export({ type: 'spki', format: 'der' }).equals(x.publicKey.export({ type: 'spki', format: 'der' }))) throw new Error('the root key does not belong to the root certificate');
        suiteForKey(x.publicKey);
      } catch (e) {
        throw new CliError(EXIT.USAGE, `root: ${(e as Error).message}`);
      }
    }
    const plugin = findSignerPlugin(cfg, argv.plugin);
    if (!plugin.provision) throw new CliError(EXIT.USAGE, `plugin ${plugin.manifest.name} cannot create CA keys`);
    const rootView = viewCertificate(rootDer);
    let caDer: Buffer | undefined;
    let facts: Record<string, unknown>;
    try {
      facts = await plugin.provision(cfg.get<string | undefined>('cert.config_file'), { log: quiet() }, {
        keyType: argv.keyType,
        keySize: argv.keySize,
        certify: async (spki) => {
          caDer = makeIssuing({ key: rootKey, cert: rootDer, subject: rootView.subject, spki: rootView.spki }, spki, argv.caCn, argv.caDays);
          return { caCert: caDer, chain: [rootDer] };
        },
      });
    } catch (e) {
      if (isCertSignerError(e)) throw new CliError(e.kind === 'config' ? EXIT.USAGE : EXIT.STARTUP, e.message);
      throw e;
    }
    const out = { plugin: plugin.manifest.name, root: certSummary(rootDer), issuing_ca: certSummary(caDer!), ...facts };
    print(argv.format, out, `issuing CA created by ${plugin.manifest.name}\n  root:       ${String((out.root as Record<string, unknown>).subject)} (${String((out.root as Record<string, unknown>).sha256)})\n  issuing CA: ${String((out.issuing_ca as Record<string, unknown>).subject)} until ${String((out.issuing_ca as Record<string, unknown>).not_after)}\n${Object.entries(facts).map(([k, v]) => `  ${k}: ${String(v)}\n`).join('')}${argv.newRoot ? `move ${argv.rootKey} offline: the daemon never needs the root key\n` : ''}`);
    return EXIT.OK;
  },
});

const show = defineCommand<{ config?: string; format: string }>({
  command: 'show',
  describe: 'Open the signer, self-test it and show the CA chain and where its key lives',
  builder: (y) =>
    y
      .example('$0 cert show --format json', 'the CA chain and where its key lives, as JSON')
      .option('config', { type: 'string', describe: 'Config file (default $TAS_CONFIG_FILE)' })
      .option('format', { choices: ['text', 'json'], default: 'text' }) as never,
  async run(argv) {
    const cfg = toolConfig(argv.config);
    const plugin = findSignerPlugin(cfg);
    let signer;
    try {
      signer = await plugin.open(cfg.get<string | undefined>('cert.config_file'), { log: quiet() });
    } catch (e) {
      if (isCertSignerError(e)) throw new CliError(e.kind === 'config' ? EXIT.USAGE : EXIT.CHECK_FAILED, e.message);
      throw e;
    }
    const svc = new SignerService(signer, quiet());
    try {
      let selfTest = 'ok';
      try {
        await svc.start();
      } catch (e) {
        selfTest = (e as Error).message;
      }
      const ready = (await svc.readiness()) ?? 'ok';
      if (ready !== 'ok' && selfTest === 'ok') selfTest = ready;
      const m = signer.ca();
      const chain = [m.caCert, ...m.chain].map(certSummary);
      const facts = (await signer.describe?.()) ?? {};
      const out = { plugin: plugin.manifest.name, suite: m.suite, self_test: selfTest, chain, ...facts };
      print(argv.format, out, `${plugin.manifest.name}: ${m.suite}, self-test ${selfTest}\n${chain.map((c, i) => `  [${i}] ${String(c.subject)} (issuer ${String(c.issuer)}) ${String(c.not_before)} .. ${String(c.not_after)} ${String(c.key)} sha256 ${String(c.sha256)}\n`).join('')}${Object.entries(facts).map(([k, v]) => `  ${k}: ${String(v)}\n`).join('')}`);
      return selfTest === 'ok' ? EXIT.OK : EXIT.CHECK_FAILED;
    } finally {
      await svc.close();
    }
  },
});

export const certCommand = group('cert <command>', 'Workload certificates (certify): the CA hierarchy', [group('ca <command>', 'Create or show the CA hierarchy', [init, show] as never)] as never);
