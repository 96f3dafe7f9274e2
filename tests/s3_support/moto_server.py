"""An S3 + STS + IAM server on 127.0.0.1 for the s3:// context tests: moto in server mode, filled
through boto3 (AWS's own SDK, a client independent of trowel), then switched to checking every
request's SigV4 signature and IAM policy, as AWS does.

    python moto_server.py WATCH_PID OBJECTS_DIR

Uploads every file under OBJECTS_DIR to the bucket `trowel-ctx` (its path the key), makes the
users `builder` (may read the bucket's objects) and `outsider` (may not) with access keys, and
the role `ctx-reader` (may read them) for web identity, then prints one JSON line:
{"endpoint", "builder": [id, secret], "outsider": [id, secret], "role_arn"}. It ends when
WATCH_PID does (the test binary): no server outlives the tests.

moto checks a signature on every request once checking is on, AssumeRoleWithWebIdentity
included; AWS serves that one unsigned (the web identity token is the credential), and so does
this server.
"""

import json
import os
import socket
import sys
import time

import boto3
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.server import ThreadedMotoServer

UNSIGNED_ACTIONS = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}
_checked = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action


def _as_aws(self, resource="*"):
    if self._get_action() in UNSIGNED_ACTIONS:
        return None
    return _checked(self, resource)


ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = _as_aws

BUCKET = "trowel-ctx"
READ = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}],
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
    watch, objects = int(sys.argv[1]), sys.argv[2]
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    kw = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    s3, iam = boto3.client("s3", **kw), boto3.client("iam", **kw)
    s3.create_bucket(Bucket=BUCKET)
    for root, _, files in os.walk(objects):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as body:
                s3.put_object(Bucket=BUCKET, Key=os.path.relpath(path, objects), Body=body.read())
    keys = {}
    for user, policy in (("builder", READ), ("outsider", None)):
        iam.create_user(UserName=user)
        if policy:
            iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=policy)
        k = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = [k["AccessKeyId"], k["SecretAccessKey"]]
    role = iam.create_role(RoleName="ctx-reader", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    iam.put_role_policy(RoleName="ctx-reader", PolicyName="read", PolicyDocument=READ)
    # From now on every request is authenticated and authorised.
    # (moto's /moto-api/reset-auth does this over HTTP; the server is this process.)
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
