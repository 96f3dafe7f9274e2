"""Amazon ECR's and STS's APIs on 127.0.0.1 for tests/registry_cloud.rs: moto in server mode
(the s3:// tests' emulator, scripts/s3-emulator.sh), which checks every request's SigV4
signature and IAM policy as AWS does, with one change: ECR's GetAuthorizationToken hands out the
test registry's own user and password (base64 `USER:PASSWORD`, ECR's shape) instead of moto's
made-up `AWS:<id>-auth-token`, so trowel's login can be followed by a real push.

    python fake_ecr.py WATCH_PID USER PASSWORD IDS_FILE

Makes the users `pusher` (may call ecr:GetAuthorizationToken) and `outsider` (may not) with
access keys, and the role `ecr-pusher` (may) for web identity, then prints one JSON line:
{"endpoint", "pusher": [id, secret], "outsider": [id, secret], "role_arn"}. Every registryIds a
token was asked for is appended to IDS_FILE. It ends when WATCH_PID does (the test binary).
"""

import json
import os
import socket
import sys
import time
from base64 import b64encode
from datetime import datetime, timezone

import boto3
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.ecr.responses import ECRResponse
from moto.server import ThreadedMotoServer

UNSIGNED_ACTIONS = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}
_checked = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action


def _as_aws(self, resource="*"):
    if self._get_action() in UNSIGNED_ACTIONS:
        return None
    return _checked(self, resource)


ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = _as_aws

PUSH = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}],
    }
)
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.trowel.test"},
                "Action": "sts:AssumeRoleWithWebIdentity",
            }
        ],
    }
)


def main() -> None:
    watch, user, password, ids_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    _original = ECRResponse.get_authorization_token

    def get_authorization_token(self):
        result = _original(self)
        ids = self._get_param("registryIds") or []
        with open(ids_file, "a") as f:
            f.write(json.dumps(ids) + "\n")
        token = b64encode(f"{user}:{password}".encode()).decode()
        for entry in result.result["authorizationData"]:
            entry["authorizationToken"] = token
            entry["expiresAt"] = datetime(2099, 1, 1, tzinfo=timezone.utc)
        return result

    ECRResponse.get_authorization_token = get_authorization_token
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
    iam = boto3.client("iam", **kw)
    keys = {}
    for name, policy in (("pusher", PUSH), ("outsider", None)):
        iam.create_user(UserName=name)
        if policy:
            iam.put_user_policy(UserName=name, PolicyName="push", PolicyDocument=policy)
        k = iam.create_access_key(UserName=name)["AccessKey"]
        keys[name] = [k["AccessKeyId"], k["SecretAccessKey"]]
    role = iam.create_role(RoleName="ecr-pusher", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    iam.put_role_policy(RoleName="ecr-pusher", PolicyName="push", PolicyDocument=PUSH)
    # From now on every request is authenticated and authorised.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    print(json.dumps({"endpoint": endpoint, "role_arn": role, **keys}), flush=True)
    while True:
        try:
            os.kill(watch, 0)
        except OSError:
            os._exit(0)
        time.sleep(1)


if __name__ == "__main__":
    main()
