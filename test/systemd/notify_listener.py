"""Test NOTIFY_SOCKET listener: binds a unix datagram socket (path or @abstract) and prints each
datagram as one JSON line {"pid": sender pid, "msg": text} on stdout, flushed."""
import json
import socket
import struct
import sys

path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\0' + path[1:] if path.startswith('@') else path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"bound": path}), flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = next((struct.unpack('iII', d[:12])[0] for _, t, d in anc if t == socket.SCM_CREDENTIALS), None)
    print(json.dumps({"pid": pid, "msg": msg.decode()}), flush=True)
