"""``iot.auth.v1.ProfileService`` (protos/iot/auth/v1/profile.proto): the caller's profile."""
