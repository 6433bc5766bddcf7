"""``iot.auth.v1.AdminService`` (protos/iot/auth/v1/admin.proto): user administration."""
