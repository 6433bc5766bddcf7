"""``iot.chat.v1.ChatService`` (protos/iot/chat/v1/chat.proto): the support assistant."""
