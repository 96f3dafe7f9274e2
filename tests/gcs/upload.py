"""Uploads a file to the GCS emulator at STORAGE_EMULATOR_HOST with Google's own Python client
(PyPI google-cloud-storage), creating the bucket if it is not there: the independent client
tests/context_gcs.rs puts its contexts in place with.

    upload.py BUCKET OBJECT FILE
"""

import sys

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

bucket_name, object_name, path = sys.argv[1:4]
client = storage.Client(project="trowel-test", credentials=AnonymousCredentials())
bucket = client.lookup_bucket(bucket_name) or client.create_bucket(bucket_name)
blob = bucket.blob(object_name)
blob.upload_from_filename(path)
# Read back through the client: what trowel downloads is what was stored.
assert blob.download_as_bytes() == open(path, "rb").read()
print("gs://%s/%s %d bytes" % (bucket_name, object_name, blob.size))
