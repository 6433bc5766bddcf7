"""The suite's status (protos/iot/system/v1/system.proto), served by the auth process."""
