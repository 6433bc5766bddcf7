"""``iot.auth.v1.DataService`` (protos/iot/auth/v1/data.proto): the caller's data download."""
