"""The BlobStore contract (`loopml.testing.blobstore_contract`) on every blob backend."""

from loopml.testing.blobstore_contract import *  # noqa: F403
