"""The messages of sandboxd's `process.v1.ProcessService` that this package sends and reads, described by hand.

Written from the service's proto (`packages/sandboxd/spec/process/v1/process.proto` in agent-sandbox): the same
package, message names, field numbers and types, so the bytes on the wire are the service's own. Only the fields
used here are described (protobuf skips unknown fields on both sides): `ProcessConfig.command`, no PTY, and the
signal as its enum's number. `WriteStdinRequest.eof` is a `google.protobuf.Empty` there; an empty message of our own
encodes to the same bytes.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE = "/process.v1.ProcessService"
SIGINT, SIGKILL, SIGTERM = 2, 9, 15
"""The `Signal` enum's values: the POSIX numbers."""

_F = descriptor_pb2.FieldDescriptorProto
_FIELDS: dict[str, list[tuple[str, int, int, int, str | None, int | None]]] = {
    # name: [(field, number, type, label, message type, oneof index)]
    "ProcessConfig": [("command", 1, _F.TYPE_STRING, _F.LABEL_REPEATED, None, None)],
    "StartRequest": [("config", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "ProcessConfig", None)],
    "InitEvent": [("process_id", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None, None)],
    "ExitEvent": [("exit_code", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None, None)],
    "StartResponse": [
        ("init", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "InitEvent", 0),
        ("stdout", 2, _F.TYPE_BYTES, _F.LABEL_OPTIONAL, None, 0),
        ("stderr", 3, _F.TYPE_BYTES, _F.LABEL_OPTIONAL, None, 0),
        ("exit", 4, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "ExitEvent", 0),
    ],
    "Eof": [],
    "WriteStdinRequest": [
        ("process_id", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None, None),
        ("input", 2, _F.TYPE_BYTES, _F.LABEL_OPTIONAL, None, 0),
        ("eof", 3, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "Eof", 0),
    ],
    "WriteStdinResponse": [],
    "SendSignalRequest": [
        ("process_id", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None, None),
        ("signal", 2, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None, None),
    ],
    "SendSignalResponse": [],
}
_ONEOFS = {"StartResponse": "event", "WriteStdinRequest": "payload"}


def _messages() -> dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(
        name="langchain_kubernetes_agent_sandbox/sandboxd_process.proto", package="process.v1", syntax="proto3"
    )
    for name, fields in _FIELDS.items():
        message = file.message_type.add(name=name)
        if name in _ONEOFS:
            message.oneof_decl.add(name=_ONEOFS[name])
        for field, number, kind, label, type_name, oneof in fields:
            entry = message.field.add(name=field, number=number, type=kind, label=label)
            if type_name is not None:
                entry.type_name = f".process.v1.{type_name}"
            if oneof is not None:
                entry.oneof_index = oneof
    pool = descriptor_pool.DescriptorPool()
    described = pool.Add(file)
    return {name: message_factory.GetMessageClass(described.message_types_by_name[name]) for name in _FIELDS}


_CLASSES = _messages()
ProcessConfig: Any = _CLASSES["ProcessConfig"]
StartRequest: Any = _CLASSES["StartRequest"]
StartResponse: Any = _CLASSES["StartResponse"]
WriteStdinRequest: Any = _CLASSES["WriteStdinRequest"]
WriteStdinResponse: Any = _CLASSES["WriteStdinResponse"]
SendSignalRequest: Any = _CLASSES["SendSignalRequest"]
SendSignalResponse: Any = _CLASSES["SendSignalResponse"]
Eof: Any = _CLASSES["Eof"]
