"""Capture PyKMIP's own client traffic as TTLV hex fixtures (run with /usr/bin/python3).

Wraps kmip.services.kmip_protocol.KMIPProtocol.write/read (OPS.md section 5.3): write() receives
the encoded request message, read() returns a BytearrayStream whose .buffer is the response.
Usage: capture.py <pykmip.conf> <version 1.2|2.0> <key name> <uid>
Prints one JSON object {op: {"request": hex, "response": hex}} for DiscoverVersions, Locate,
GetAttributes and Get. The key must exist, be Active and be owned by the configured identity.
"""
import json
import sys

from kmip import enums
from kmip.core import objects as cobjects
from kmip.core.messages import contents
from kmip.pie.client import ProxyKmipClient
from kmip.services import kmip_protocol

VERSIONS = {"1.2": enums.KMIPVersion.KMIP_1_2, "2.0": enums.KMIPVersion.KMIP_2_0}
frames = []

_write = kmip_protocol.KMIPProtocol.write
_read = kmip_protocol.KMIPProtocol.read


def write(self, data):
    frames.append(["request", bytes(data)])
    return _write(self, data)


def read(self):
    stream = _read(self)
    frames.append(["response", bytes(stream.buffer)])
    return stream


kmip_protocol.KMIPProtocol.write = write
kmip_protocol.KMIPProtocol.read = read


def take():
    req = [f[1] for f in frames if f[0] == "request"]
    resp = [f[1] for f in frames if f[0] == "response"]
    assert len(req) == 1 and len(resp) == 1, frames
    frames.clear()
    return {"request": req[0].hex(), "response": resp[0].hex()}


def main():
    conf, version, name, uid = sys.argv[1:5]
    out = {}
    with ProxyKmipClient(config="client", config_file=conf, kmip_version=VERSIONS[version]) as c:
        frames.clear()
        c.proxy.discover_versions(protocol_versions=[
            contents.ProtocolVersion(2, 0), contents.ProtocolVersion(1, 4), contents.ProtocolVersion(1, 2)])
        out["DiscoverVersions"] = take()
        f = c.attribute_factory
        attrs = [
            f.create_attribute(enums.AttributeType.OBJECT_TYPE, enums.ObjectType.SYMMETRIC_KEY),
            f.create_attribute(enums.AttributeType.STATE, enums.State.ACTIVE),
            f.create_attribute(enums.AttributeType.NAME, cobjects.Attribute.AttributeValue if False else name),
        ]
        found = c.locate(maximum_items=2, attributes=attrs)
        assert found == [uid], found
        out["Locate"] = take()
        c.get_attributes(uid, ["Object Type", "State", "Name"])
        out["GetAttributes"] = take()
        c.get(uid)
        out["Get"] = take()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
