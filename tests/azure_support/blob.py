"""Microsoft's Python SDK (azure-storage-blob) as the independent client of the Azure tests:
uploads a context and signs SAS tokens, against Azurite or any account.

    blob.py CONNECTION_STRING upload CONTAINER NAME FILE [public]
    blob.py CONNECTION_STRING sas CONTAINER NAME       (prints a read-only SAS token for NAME)
"""
import datetime
import sys

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

conn, op, container, name = sys.argv[1:5]
svc = BlobServiceClient.from_connection_string(conn)
if op == "upload":
    c = svc.get_container_client(container)
    try:
        c.create_container(public_access="blob" if sys.argv[6:] == ["public"] else None)
    except ResourceExistsError:
        pass
    with open(sys.argv[5], "rb") as f:
        c.upload_blob(name, f, overwrite=True)
elif op == "sas":
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    print(generate_blob_sas(svc.account_name, container, name, account_key=svc.credential.account_key,
                            permission=BlobSasPermissions(read=True), expiry=expiry))
else:
    sys.exit(f"unknown operation {op}")
