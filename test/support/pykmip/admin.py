"""Test-fixture administration for the PyKMIP test server (run with /usr/bin/python3).

Reads a JSON job from stdin: {"config": "<pykmip.conf>", "version": "1.2", "ops": [...]}, where
each op is one of
  {"op": "create_aes", "name": "...", "bits": 256, "activate": true, "policy": "<operation policy name>"}
  {"op": "register_secret", "name": "...", "hex": "..."}
  {"op": "destroy", "uid": "..."}
and prints one JSON line: [{"uid": "...", "hex": "<key material>"} | {"uid": "..."}, ...].
The key material is printed so that tests can compare it with what tas released; the server
runs at INFO level so it does not log it.
"""
import json
import sys
import time

from kmip import enums
from kmip.pie import objects
from kmip.pie.client import ProxyKmipClient
from kmip.pie.exceptions import KmipOperationFailure

VERSIONS = {
    "1.2": enums.KMIPVersion.KMIP_1_2,
    "1.4": enums.KMIPVersion.KMIP_1_4,
    "2.0": enums.KMIPVersion.KMIP_2_0,
}


def activate(c, uid, policy):
    """Activate uid. PyKMIP's policy-file monitor is a separate process that loads policy files
    some time after the server binds; until it has, an object under a named policy is refused to
    everyone (PERMISSION_DENIED), so wait for it, bounded (100 polls of 100 ms)."""
    for attempt in range(100):
        try:
            c.activate(uid)
            return
        except KmipOperationFailure as e:
            if policy is None or e.status != enums.ResultStatus.OPERATION_FAILED or attempt == 99:
                raise
            time.sleep(0.1)


def main():
    job = json.load(sys.stdin)
    out = []
    with ProxyKmipClient(config="client", config_file=job["config"],
                         kmip_version=VERSIONS[job.get("version", "1.2")]) as c:
        for op in job["ops"]:
            kind = op["op"]
            if kind == "create_aes":
                uid = c.create(enums.CryptographicAlgorithm.AES, op.get("bits", 256), name=op["name"],
                               operation_policy_name=op.get("policy"),
                               cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                                         enums.CryptographicUsageMask.DECRYPT])
                if op.get("activate", True):
                    activate(c, uid, op.get("policy"))
                out.append({"uid": uid, "hex": bytes(c.get(uid).value).hex()})
            elif kind == "register_secret":
                secret = objects.SecretData(bytes.fromhex(op["hex"]), enums.SecretDataType.PASSWORD,
                                            masks=[enums.CryptographicUsageMask.VERIFY], name=op["name"])
                uid = c.register(secret)
                if op.get("activate", True):
                    c.activate(uid)
                out.append({"uid": uid, "hex": op["hex"]})
            elif kind == "destroy":
                c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, op["uid"])
                c.destroy(op["uid"])
                out.append({"uid": op["uid"]})
            else:
                raise SystemExit("unknown op " + kind)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
