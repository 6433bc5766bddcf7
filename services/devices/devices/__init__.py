"""``iot.devices.v1.DeviceService`` (protos/iot/devices/v1/devices.proto): the device registry."""
