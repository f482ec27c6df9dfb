"""discord.py's message objects as the relay's `IncomingMessage`: attachments (voice notes with
their length), stickers, link embeds, the replied-to and forwarded messages, the sender's display
name. One adapter, so `placeholders`, `attachment_reader` and `transcriber` serve both modes.
"""

from __future__ import annotations

import discord

from server.conversation.placeholders import MAX_QUOTE
from server.transport.protocol import Attachment, Author, Embed, IncomingMessage, Quoted

MAX_EMBED_TEXT = 300
"""Characters of an embed's title or description kept (the plugin shortens them the same way)."""


def incoming_message(message: discord.Message, content: str, bot_id: int) -> IncomingMessage:
    """`message` as the relay reads a forwarded one; `content` is its text as the model should
    see it (the bot's own mention taken out). A reply to one of the bot's own messages is not
    quoted: that answer is in the conversation already."""
    author = message.author
    return IncomingMessage(
        type="message",
        id=str(message.id),
        channel=str(message.channel.id),
        guild=str(message.guild.id) if message.guild is not None else None,
        author=Author(
            id=str(author.id),
            username=author.name,
            bot=author.bot,
            display_name=author.display_name,
        ),
        content=content,
        timestamp=message.created_at.isoformat(),
        attachments=[_attachment(a) for a in message.attachments],
        stickers=[sticker.name for sticker in message.stickers],
        embeds=[_embed(e) for e in message.embeds if e.title or e.description or e.url],
        reference=_replied_to(message, bot_id),
        forwarded=[_forwarded(s) for s in message.message_snapshots],
    )


def _attachment(attachment: discord.Attachment) -> Attachment:
    """A discord.py attachment as the frame's; `voice` from the message's IS_VOICE_MESSAGE."""
    return Attachment(
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=max(attachment.size, 0),
        url=attachment.url,
        width=attachment.width,
        height=attachment.height,
        voice=attachment.is_voice_message(),
        duration=attachment.duration,
    )


def _embed(embed: discord.Embed) -> Embed:
    """A link embed's title, description and URL, shortened."""
    return Embed(
        title=(embed.title or "")[:MAX_EMBED_TEXT],
        description=(embed.description or "")[:MAX_EMBED_TEXT],
        url=embed.url or "",
    )


def _replied_to(message: discord.Message, bot_id: int) -> Quoted | None:
    """The message this one replies to, when Discord sent it along (`referenced_message`) and
    someone other than the bot wrote it."""
    reference = message.reference
    resolved = reference.resolved if reference is not None else None
    if not isinstance(resolved, discord.Message) or resolved.author.id == bot_id:
        return None
    return Quoted(
        author=resolved.author.display_name,
        content=resolved.content[: MAX_QUOTE * 2],
        attachments=[a.filename for a in resolved.attachments],
    )


def _forwarded(snapshot: discord.MessageSnapshot) -> Quoted:
    """A forwarded message (`message_snapshots`): its text and file names, no author."""
    return Quoted(
        content=snapshot.content[: MAX_QUOTE * 2],
        attachments=[a.filename for a in snapshot.attachments],
    )
