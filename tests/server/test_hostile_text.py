"""Names and output made to spoof the text a client shows: newlines that forge listing lines, ANSI escapes that
recolour or clear a terminal. Through a real MCP client, the structured content keeps them exactly and the
text shows them escaped."""

from __future__ import annotations

from tests.server.mcp_calls import Connect, call, data, text_of

NAMES = ["a\nb", "\x1b[31mred", "tab\there", "\u202eevil"]


async def test_names_that_would_spoof_the_listing_list_exactly_and_show_escaped(connect: Connect) -> None:
    async with connect() as client:
        await call(client, "execute", command="mkdir /tmp/names && ln -s /tmp/names /app/linked")
        for name in NAMES:
            await call(client, "upload_file", path=f"/tmp/names/{name}", content="x")
            await call(client, "upload_file", path=f"/app/direct/{name}", content="x")
        for folder in ("/app/linked", "/app/direct"):  # through the sandbox's shell, and the host's fast path
            listed = await call(client, "list_files", path=folder)
            assert [entry["name"] for entry in data(listed)["entries"]] == sorted(NAMES)
            text = text_of(listed)
            assert "\x1b" not in text
            assert "\u202e" not in text
            assert len(text.splitlines()) == 1 + len(NAMES), "one line per entry, no forged ones"
            for shown in ("a\\nb", "\\x1b[31mred", "tab\\there", "\\u202eevil"):
                assert shown in text


async def test_output_keeps_its_lines_but_shows_escape_sequences_escaped(connect: Connect) -> None:
    async with connect() as client:
        ran = await call(client, "execute", command=r"printf '\033[2J\033[31mred\nnext\r\nover\rwrite\t!'")
        assert data(ran)["stdout"] == "\x1b[2J\x1b[31mred\nnext\r\nover\rwrite\t!"
        text = text_of(ran)
        assert text.startswith("\\x1b[2J\\x1b[31mred\nnext\r\nover\\rwrite\t!\n")
        await call(client, "execute", command=r"printf 'safe\033]0;title\007' > /app/escapes.txt")
        downloaded = await call(client, "download_file", path="/app/escapes.txt")
        assert data(downloaded)["content"] == "safe\x1b]0;title\x07"
        assert text_of(downloaded).endswith("safe\\x1b]0;title\\x07")
