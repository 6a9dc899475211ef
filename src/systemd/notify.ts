/**
 * sd_notify without libsystemd: one AF_UNIX/SOCK_DGRAM datagram to $NOTIFY_SOCKET, sent through
 * koffi calling libc socket/sendto/close (OPS.md §2.2). Messages must come from the main PID
 * (NotifyAccess=main), so they are sent from this process, never from a helper.
 */
import type * as Koffi from 'koffi';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(sun_path) on Linux. */
const SUN_PATH = 108;

interface Libc {
  socket: (domain: number, type: number, proto: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, alen: number) => number | bigint;
  close: (fd: number) => number;
  errno: () => number;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  // Loaded on first use: commands other than `tas serve` under systemd never need the FFI.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const koffi = require('koffi') as typeof Koffi;
  const lib = koffi.load('libc.so.6');
  const errnoLocation = lib.func('int *__errno_location(void)');
  libc = {
    socket: lib.func('int socket(int, int, int)'),
    sendto: lib.func('long sendto(int, const void *, size_t, int, const void *, uint32_t)'),
    close: lib.func('int close(int)'),
    errno: () => koffi.decode(errnoLocation(), 'int') as number,
  };
  return libc;
}

/** sockaddrUn builds a struct sockaddr_un for a path or an @abstract name. */
export function sockaddrUn(name: string): Buffer {
  const abstract = name.startsWith('@');
  const path = abstract ? Buffer.concat([Buffer.from([0]), Buffer.from(name.slice(1), 'utf8')]) : Buffer.from(name, 'utf8');
  if (path.length === 0 || path.length + (abstract ? 0 : 1) > SUN_PATH) throw new Error(`NOTIFY_SOCKET ${JSON.stringify(name)} is not a valid unix socket address`);
  // Abstract addresses are exactly as long as given; paths carry their terminating NUL.
  const sa = Buffer.alloc(2 + path.length + (abstract ? 0 : 1));
  sa.writeUInt16LE(AF_UNIX, 0);
  path.copy(sa, 2);
  return sa;
}

/**
 * sendNotify sends one datagram to `socketName`. Returns false when the send failed (the reason
 * is in the thrown-free result so that a missing listener never takes the daemon down).
 */
export function sendNotify(socketName: string, state: string): { ok: boolean; error?: string } {
  let sa: Buffer;
  try {
    sa = sockaddrUn(socketName);
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
  const c = load();
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return { ok: false, error: `socket() failed, errno ${c.errno()}` };
  try {
    const msg = Buffer.from(state, 'utf8');
    const n = Number(c.sendto(fd, msg, msg.length, MSG_NOSIGNAL, sa, sa.length));
    if (n < 0) return { ok: false, error: `sendto(${socketName}) failed, errno ${c.errno()}` };
    return { ok: true };
  } finally {
    c.close(fd);
  }
}
