"""Files larger than one call carries move in pieces (offsets, the whole file's size and sha256), and a call may
ask for a larger output cap than a model's default, up to the server's maximum. Through a real MCP client."""

from __future__ import annotations

import base64
import hashlib

from langchain_kubernetes_agent_sandbox.server.downloads import KEEP_SECONDS, MAX_KEPT_BYTES, Downloads, Snapshot
from tests.server.mcp_calls import Connect, call, data, fail, text_of

PIECE = 1024


async def test_a_large_file_downloads_in_pieces_that_add_up_to_it(connect: Connect) -> None:
    async with connect(max_transfer_bytes=PIECE) as client:
        await call(client, "execute", command="head -c 3000 /dev/urandom > big.bin")
        expected = base64.b64decode(data(await call(client, "execute", command="base64 -w0 big.bin"))["stdout"])
        first = await call(client, "download_file", path="big.bin")
        assert (data(first)["size"], data(first)["next_offset"]) == (3000, PIECE)
        assert "offset=1024" in text_of(first)
        content, offset = b"", 0
        while True:
            piece = data(await call(client, "download_file", path="big.bin", offset=offset))
            content += base64.b64decode(piece["content"])
            if "next_offset" not in piece:
                break
            offset = piece["next_offset"]
        assert content == expected
        assert piece["sha256"] == hashlib.sha256(expected).hexdigest()


async def test_pieces_of_a_text_file_end_on_whole_characters(connect: Connect) -> None:
    text = "é" * 1500  # 3000 bytes: an odd piece boundary would split a character
    async with connect(max_transfer_bytes=PIECE) as client:
        await call(client, "execute", command=f"printf '%s' '{text}' > t.txt")
        pieces, offset = [], 0
        while offset is not None:
            piece = data(await call(client, "download_file", path="t.txt", offset=offset, length=PIECE - 1))
            assert piece["encoding"] == "utf-8"
            pieces.append(piece["content"])
            offset = piece.get("next_offset")
        assert "".join(pieces) == text


async def test_a_large_file_uploads_in_pieces_and_appears_whole_with_the_last(connect: Connect) -> None:
    payload = bytes(range(256)) * 12  # 3072 bytes
    digest = hashlib.sha256(payload).hexdigest()
    async with connect(max_transfer_bytes=PIECE) as client:
        for offset in range(0, len(payload), PIECE):
            content = base64.b64encode(payload[offset : offset + PIECE]).decode()
            sent = await call(
                client,
                "upload_file",
                path="up.bin",
                content=content,
                encoding="base64",
                offset=offset,
                size=len(payload),
                sha256=digest,
            )
            if offset + PIECE < len(payload):
                assert data(sent)["next_offset"] == offset + PIECE
                assert "No such file" in data(await call(client, "execute", command="ls up.bin"))["stderr"]
        assert (data(sent)["size"], data(sent)["sha256"]) == (len(payload), digest)
        written = data(await call(client, "execute", command="sha256sum up.bin; ls -A /tmp/.kas/uploads"))
        assert written["stdout"] == f"{digest}  up.bin\n"


async def test_pieces_that_do_not_add_up_write_nothing(connect: Connect) -> None:
    async with connect(max_transfer_bytes=PIECE) as client:
        await call(client, "upload_file", path="gap.txt", content="a" * 100, size=300)
        missing = await fail(client, "upload_file", path="gap.txt", content="c" * 100, offset=200, size=300)
        assert missing.startswith("invalid_argument:")
        assert "Bytes 100 to 300" in missing
        await call(client, "upload_file", path="bad.txt", content="a" * 100, size=200, sha256="0" * 64)
        wrong = await fail(
            client, "upload_file", path="bad.txt", content="b" * 100, offset=100, size=200, sha256="0" * 64
        )
        assert "nothing was written" in wrong
        left = data(await call(client, "execute", command="ls gap.txt bad.txt; ls -A /tmp/.kas/uploads"))
        assert left["stdout"] == ""
        assert "gap.txt" in left["stderr"]
        assert "bad.txt" in left["stderr"]


async def test_a_call_may_ask_for_more_output_up_to_the_servers_maximum(connect: Connect) -> None:
    command = "head -c 100000 /dev/zero | tr '\\0' x"
    async with connect(max_output_bytes=4096, max_call_output_bytes=200_000) as client:
        capped = data(await call(client, "execute", command=command))
        assert (len(capped["stdout"]) < 5000, capped["dropped_bytes"]) == (True, 100_000 - 4096)
        whole = data(await call(client, "execute", command=command, max_output_bytes=200_000))
        assert (whole["stdout"], "dropped_bytes" in whole) == ("x" * 100_000, False)
        refused = await fail(client, "execute", command=command, max_output_bytes=200_001)
        assert refused.startswith("invalid_argument:")
        assert "200000" in refused


async def test_pieces_planted_by_the_sandbox_cannot_make_a_file_larger_than_its_size(connect: Connect) -> None:
    """Code in the sandbox can write where the pieces wait: a planted 5 MB piece is read only up to the size
    the caller gave, and the sha256 the caller gave refuses the forged content."""
    async with connect(max_transfer_bytes=PIECE) as client:
        await call(client, "upload_file", path="forged.bin", content="a" * 100, size=300)
        plant = "d=$(ls -d /tmp/.kas/uploads/*) && head -c 5000000 /dev/zero > $d/000000000000100"
        assert data(await call(client, "execute", command=plant))["exit_code"] == 0
        await call(client, "upload_file", path="forged.bin", content="c" * 100, offset=200, size=300)
        written = data(await call(client, "execute", command="wc -c < forged.bin"))
        assert written["stdout"].strip() == "300"
        expected = hashlib.sha256(b"a" * 100 + b"b" * 100 + b"c" * 100).hexdigest()
        await call(client, "upload_file", path="checked.bin", content="a" * 100, size=300, sha256=expected)
        plant = "d=$(ls -d /tmp/.kas/uploads/*) && head -c 5000000 /dev/zero > $d/000000000000100"
        await call(client, "execute", command=plant)
        refused = await fail(
            client, "upload_file", path="checked.bin", content="c" * 100, offset=200, size=300, sha256=expected
        )
        assert "nothing was written" in refused


async def test_the_pieces_of_a_download_come_from_the_version_its_first_piece_read(connect: Connect) -> None:
    async with connect(max_transfer_bytes=PIECE) as client:
        await call(client, "execute", command="head -c 3000 /dev/zero | tr '\\0' a > f.txt")
        first = data(await call(client, "download_file", path="f.txt"))
        await call(client, "execute", command="head -c 3000 /dev/zero | tr '\\0' b > f.txt")
        rest = data(await call(client, "download_file", path="f.txt", offset=first["next_offset"]))
        assert (rest["content"], rest["sha256"]) == ("a" * PIECE, first["sha256"])
        # Another session's file of the same name is its own.
        other = data(await call(client, "create_session"))["session_id"]
        await call(client, "execute", command="head -c 3000 /dev/zero | tr '\\0' c > f.txt", session_id=other)
        theirs = data(await call(client, "download_file", path="f.txt", offset=PIECE, session_id=other))
        assert theirs["content"] == "c" * PIECE
        # A download that starts again reads the file as it is now.
        again = data(await call(client, "download_file", path="f.txt"))
        assert again["content"] == "b" * PIECE
        assert again["sha256"] != first["sha256"]


def test_what_downloads_keep_is_bounded_in_bytes_and_time() -> None:
    now = [0.0]
    kept = Downloads(clock=lambda: now[0])
    big = Snapshot.of(b"x" * (MAX_KEPT_BYTES // 2), is_text=True)
    for name in ("a", "b", "c"):
        kept.keep(("alice", "s1", f"/app/{name}"), big)
    assert kept.resumed(("alice", "s1", "/app/a")) is None, "the least recently used went first"
    assert kept.resumed(("alice", "s1", "/app/c")) is big
    assert kept.resumed(("bob", "s1", "/app/c")) is None
    now[0] += KEEP_SECONDS + 1
    assert kept.resumed(("alice", "s1", "/app/c")) is None
