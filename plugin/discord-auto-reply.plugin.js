/**
 * @name DiscordAutoReply
 * @version 0.1.0
 * @description Forwards messages from the chats you allow-listed to your local discord-auto-reply server, and posts the replies it asks for. Needs the server running on this computer.
 * @author discord-auto-reply contributors
 * @source https://github.com/discord-auto-reply/discord-auto-reply
 */

"use strict";

// The installer (`discord-auto-reply plugin install`) rewrites this one line with JSON values.
const DEFAULT_SETTINGS = { host: "127.0.0.1", port: 8765, secret: "", enabled: true }; // @install-defaults
// The same line as shipped, never rewritten: tells installed values from factory ones.
const FACTORY_SETTINGS = { host: "127.0.0.1", port: 8765, secret: "", enabled: true };
// How the plugin reaches the server: "auto" tries the WebSocket, then HTTP through BdApi.Net.fetch.
const TRANSPORTS = [
    ["auto", "Auto: WebSocket, else HTTP"],
    ["websocket", "WebSocket only"],
    ["http", "HTTP only (through BetterDiscord's Net.fetch)"],
];
const TRANSPORT_NAMES = { websocket: "WebSocket", http: "HTTP" };

const PLUGIN_NAME = "DiscordAutoReply";
const PLUGIN_VERSION = "0.1.0";
const WILDCARD = "*";
const DMS = "@dms"; // the rule channel for every DM and group DM with the owner
const BUFFER_LIMIT = 200; // unacknowledged messages kept for re-sending
const BUFFER_MAX_AGE_MS = 60 * 60 * 1000;
const BACKOFF = { baseMs: 1000, capMs: 30000 };
const WELCOME_TIMEOUT_MS = 10000; // handshake + hello + welcome; a silent peer is given up on
const CLOSE_BAD_SECRET = 4001;
const CLOSE_ABNORMAL = 1006; // what a socket that never connected (or a lost link) reports
// A WebSocket refused this fast never reached a server: Chromium's Local Network Access blocks
// loopback sockets from discord.com before connecting, as a stopped server would look.
const FAILED_AT_ONCE_MS = 1000;
// The HTTP transport. Net.fetch's `timeout` is an inactivity timeout (3000 ms if left out): a poll
// held by the server must be given more, and a finite value.
const HTTP_POLL_WAIT_MS = 20000; // how long the server may hold a poll with nothing to say
const HTTP_POLL_TIMEOUT_MARGIN_MS = 10000;
const HTTP_REQUEST_TIMEOUT_MS = 10000; // opening a session, posting frames
const HTTP_POLL_RETRIES = 2; // polls that may fail in a row (a timeout) before the link counts as lost
const HTTP_FRAMES_PER_POST = 64;
const FORWARDED_TYPES = new Set([0, 19]); // DEFAULT, REPLY
const EPHEMERAL_FLAG = 64;
const VOICE_MESSAGE_FLAG = 1 << 13; // IS_VOICE_MESSAGE: the attachment is a recorded voice note
// What a forwarded message carries beyond its text, shortened: enough for the model, never a flood.
const MAX_ATTACHMENTS = 10;
const MAX_EMBEDS = 5;
const MAX_STICKERS = 3;
const MAX_SNAPSHOTS = 3;
const MAX_QUOTED_TEXT = 300; // a replied-to message's text
const MAX_FORWARDED_TEXT = 1000; // a forwarded message's text
const MAX_EMBED_TITLE = 200;
const MAX_EMBED_DESCRIPTION = 300;
const MAX_NAME = 200; // display names, file names, sticker names
const MAX_URL = 2000;
const MAX_CUSTOM_STATUS = 200;
const CUSTOM_STATUS_ACTIVITY = 4; // the activity type of a custom status
const OPEN_CHANNEL_TIMEOUT_MS = 3000; // how long Discord may take to show a channel we opened
const ACTIVITY_INTERVAL_MS = 2000; // at most one activity report per interval
const ACTIVITY_EVENTS = ["keydown", "mousedown", "mousemove", "wheel"];
// Nonces of posted replies, remembered so that a repeated `send` never posts twice. The server
// resends only within its reply deadline (REPLY_WITHIN_MINUTES, 10 by default).
const POSTED_NONCES_LIMIT = 1000;
const POSTED_NONCES_MAX_AGE_MS = 10 * 60 * 1000;
const PRESENCE_STATUSES = new Set(["online", "idle", "dnd", "invisible", "offline"]);
// The away note: as long as the server keeps one, and how `away_status` says it was set here.
const AWAY_NOTE_MAX = 500;
const AWAY_NOTE_SET = "set with away note";
// Chats chosen from Discord's context menus (rule_set / rule_remove frames).
const MENU_NAV_IDS = ["user-context", "channel-context", "gdm-context"];
const MENU_ID = "discord-auto-reply";
const DM_CHANNEL = 1;
const GROUP_DM_CHANNEL = 3;
const RULE_GUILD_CHANNELS = new Set([0, 5]); // GUILD_TEXT, GUILD_ANNOUNCEMENT
const MAX_RULE_LABEL = 200;
const AWAY_SWITCHES = [
    ["auto", "Auto: follow my Discord status"],
    ["on", "On: I am away, reply for me"],
    ["off", "Off: I am here, never reply"],
];

/**
 * Every lookup of a Discord internal lives here: the one place to fix when Discord renames
 * something. Each returns null when the module is missing (found modules are cached; a miss is
 * retried next time, as Discord loads some modules late). Nothing here throws on a miss.
 */
const DiscordInternals = {
    found: new Map(),
    lookup(name, find) {
        if (!this.found.has(name)) {
            const module = find(BdApi.Webpack);
            if (module == null) return null;
            this.found.set(name, module);
        }
        return this.found.get(name);
    },
    dispatcher() {
        return this.lookup("dispatcher", (Webpack) => {
            const found = Webpack.getModule(Webpack.Filters.byKeys("dispatch", "subscribe", "register"), { searchExports: true });
            const viaStore = this.userStore()?._dispatcher;
            return [found, viaStore].find(isDispatcher) ?? null;
        });
    },
    userStore() {
        return this.lookup("UserStore", (Webpack) => Webpack.getStore("UserStore") ?? null);
    },
    currentUserId() {
        const id = this.userStore()?.getCurrentUser?.()?.id;
        return id == null ? null : String(id);
    },
    messageActions() {
        return this.lookup("messageActions", (Webpack) => {
            const found = Webpack.getModule(Webpack.Filters.byKeys("sendMessage", "editMessage"));
            return typeof found?.sendMessage === "function" ? found : null;
        });
    },
    typingActions() {
        return this.lookup("typingActions", (Webpack) => {
            const found = Webpack.getModule(Webpack.Filters.byKeys("startTyping", "stopTyping"));
            return typeof found?.startTyping === "function" ? found : null;
        });
    },
    /*
     * The owner's own status. Discord's own code reads it as `userId === currentUserId ?
     * SelfPresenceStore.getStatus() : PresenceStore.getStatus(userId, guildId)` (its user-profile
     * hooks), and dispatches SELF_PRESENCE_STORE_UPDATE when it changes: SelfPresenceStore holds
     * the status this client broadcasts, including the idle that Discord sets by itself after some
     * minutes without input. We read that store. PresenceStore holds everyone's presence from the
     * gateway and skips updates about yourself, so it is only a fallback. The "status" user setting
     * (UserSettingsProtoStore) is not used: it holds only the status chosen by hand, never the
     * automatic idle.
     */
    selfPresenceStore() {
        return this.lookup("SelfPresenceStore", (Webpack) => Webpack.getStore("SelfPresenceStore") ?? null);
    },
    presenceStore() {
        return this.lookup("PresenceStore", (Webpack) => Webpack.getStore("PresenceStore") ?? null);
    },
    /** "online", "idle", "dnd", "invisible" or "offline"; null when no store answers. */
    ownStatus() {
        const own = this.selfPresenceStore()?.getStatus?.();
        if (PRESENCE_STATUSES.has(own)) return own;
        const id = this.currentUserId();
        const seen = id == null ? null : this.presenceStore()?.getStatus?.(id);
        return PRESENCE_STATUSES.has(seen) ? seen : null;
    },
    /** The text of the owner's custom status ("" when none is set or the store is missing). */
    ownCustomStatus() {
        return customStatusText(this.selfPresenceStore()?.getActivities?.());
    },
    /** The stores whose changes may change the owner's status (Flux change listeners). */
    presenceStores() {
        return [this.selfPresenceStore(), this.presenceStore()].filter((store) => typeof store?.addChangeListener === "function");
    },
    /** "in your DM", "in #general", "in the group Friends", or the id when the channel is unknown. */
    chatLabel(channelId) {
        const channel = this.channelStore()?.getChannel?.(channelId);
        if (!channel) return `in channel ${channelId}`;
        if (channel.type === 1) return "in your DM";
        if (channel.type === 3) return `in the group ${channel.name || "DM"}`;
        return channel.name ? `in #${channel.name}` : `in channel ${channelId}`;
    },
    /** The name Discord shows for a user, or null when the client does not know them. */
    userName(userId) {
        const user = this.userStore()?.getUser?.(userId);
        return user ? String(user.globalName ?? user.global_name ?? user.username ?? userId) : null;
    },
    /** Open a chat in the client, as a click would; false when the router was not found. */
    openChat(channelId, guildId) {
        return this.navigate(channelPath(channelId, guildId ?? this.guildOf(channelId)));
    },
    channelStore() {
        return this.lookup("ChannelStore", (Webpack) => Webpack.getStore("ChannelStore") ?? null);
    },
    guildStore() {
        return this.lookup("GuildStore", (Webpack) => Webpack.getStore("GuildStore") ?? null);
    },
    /** The name of a server, or null when the client does not know it. */
    guildName(guildId) {
        const name = this.guildStore()?.getGuild?.(guildId)?.name;
        return name ? String(name) : null;
    },
    /** How a chat is known in the client: `{dm, recipients}`, or null when the client does not know it. */
    chatKind(channelId) {
        const channel = this.channelStore()?.getChannel?.(channelId);
        if (!channel) return null;
        const dm = channel.type === DM_CHANNEL || channel.type === GROUP_DM_CHANNEL;
        return { dm, recipients: dm ? recipientIds(channel) : [] };
    },
    /**
     * A rule's chat by name ("Sam · DM", "everyone · #general · My Server", "Sam · all DMs"), or
     * null when the client knows neither who nor where.
     */
    ruleName(rule) {
        const who = rule.user === WILDCARD ? "everyone" : this.userName(rule.user);
        let where = null;
        if (rule.channel === DMS) where = "all DMs";
        else if (rule.channel === WILDCARD) where = "everywhere";
        else {
            const channel = this.channelStore()?.getChannel?.(rule.channel);
            if (channel?.type === DM_CHANNEL) where = "DM";
            else if (channel?.type === GROUP_DM_CHANNEL) where = channel.name ? `group ${channel.name}` : "group DM";
            else if (channel?.name) where = `#${channel.name}${channel.guild_id ? ` · ${this.guildName(channel.guild_id) ?? "server"}` : ""}`;
        }
        return who && where ? `${who} · ${where}` : null;
    },
    /** BetterDiscord's ContextMenu API (BD 1.8+), or null. */
    contextMenu() {
        return this.lookup("ContextMenu", () => {
            const menu = BdApi.ContextMenu;
            return typeof menu?.patch === "function" && typeof menu?.buildItem === "function" ? menu : null;
        });
    },
    selectedChannelStore() {
        return this.lookup("SelectedChannelStore", (Webpack) => {
            const found = Webpack.getStore("SelectedChannelStore") ?? Webpack.getByKeys("getChannelId", "getLastSelectedChannelId");
            return typeof found?.getChannelId === "function" ? found : null;
        });
    },
    /** Discord's router: the named module older clients export, else the function found by its log text. */
    router() {
        return this.lookup("router", (Webpack) => {
            const named = Webpack.getByKeys("transitionTo", "transitionToGuild");
            if (typeof named?.transitionTo === "function") return named;
            const transitionTo = Webpack.getByStrings("transitionTo - Transitioning to", { searchExports: true });
            return typeof transitionTo === "function" ? { transitionTo } : null;
        });
    },
    /** The channel Discord shows now, or null. */
    selectedChannelId() {
        const id = this.selectedChannelStore()?.getChannelId();
        return id == null ? null : String(id);
    },
    /** The guild a channel belongs to, or null for a DM (or a channel the client does not know). */
    guildOf(channelId) {
        const guild = this.channelStore()?.getChannel?.(channelId)?.guild_id;
        return guild == null ? null : String(guild);
    },
    /** Navigate like a click in the client would; false when the router is missing. */
    navigate(path) {
        const router = this.router();
        if (!router) return false;
        router.transitionTo(path);
        return true;
    },
    /** Show "you are typing" in a channel: the typing module, else the local Flux action it dispatches. */
    startTyping(channelId) {
        const typing = this.typingActions();
        if (typing) return typing.startTyping(channelId), true;
        const dispatcher = this.dispatcher();
        if (dispatcher) return dispatcher.dispatch({ type: "TYPING_START_LOCAL", channelId }), true;
        return false;
    },
};

function isDispatcher(candidate) {
    return typeof candidate?.subscribe === "function" && typeof candidate?.unsubscribe === "function" && typeof candidate?.dispatch === "function";
}

/* ---------- Pure decisions: no sockets, no Discord ---------- */

/** `value` as text of at most `limit` characters ("…" marks a cut), "" for anything else. */
function shortText(value, limit) {
    if (typeof value !== "string") return "";
    return value.length <= limit ? value : `${value.slice(0, limit - 1)}…`;
}

/** A non-negative whole number, or null. */
function count(value) {
    const number = Number(value);
    return value != null && Number.isFinite(number) && number >= 0 ? Math.floor(number) : null;
}

/** The name Discord shows for a message's author: the server nickname, else the global name. */
function displayName(message) {
    const author = message?.author ?? {};
    const name = message?.member?.nick || author.global_name || author.globalName || author.username || "";
    return shortText(String(name), MAX_NAME);
}

/** A message's attachments as the server reads them; voice notes carry their length. */
function attachmentsOf(message) {
    if (!Array.isArray(message?.attachments)) return [];
    const voice = (Number(message.flags) & VOICE_MESSAGE_FLAG) !== 0;
    return message.attachments
        .filter((item) => item && typeof item === "object")
        .slice(0, MAX_ATTACHMENTS)
        .map((item) => {
            const duration = Number(item.duration_secs);
            return {
                filename: shortText(String(item.filename ?? "file"), MAX_NAME),
                content_type: typeof item.content_type === "string" ? shortText(item.content_type, MAX_NAME) : null,
                size: count(item.size) ?? 0,
                url: shortText(String(item.url ?? ""), MAX_URL),
                width: count(item.width),
                height: count(item.height),
                voice,
                duration: voice && Number.isFinite(duration) && duration >= 0 ? duration : null,
            };
        });
}

/** Link embeds (title, description, URL), shortened; embeds with none of them are left out. */
function embedsOf(message) {
    if (!Array.isArray(message?.embeds)) return [];
    return message.embeds
        .filter((embed) => embed && typeof embed === "object")
        .map((embed) => ({
            title: shortText(embed.title, MAX_EMBED_TITLE),
            description: shortText(embed.description, MAX_EMBED_DESCRIPTION),
            url: shortText(embed.url, MAX_URL),
        }))
        .filter((embed) => embed.title || embed.description || embed.url)
        .slice(0, MAX_EMBEDS);
}

/** Sticker names (`sticker_items`, or `stickers` in older payloads). */
function stickersOf(message) {
    const items = Array.isArray(message?.sticker_items) ? message.sticker_items : Array.isArray(message?.stickers) ? message.stickers : [];
    return items.map((item) => shortText(String(item?.name ?? ""), MAX_NAME)).filter(Boolean).slice(0, MAX_STICKERS);
}

/** Another message quoted in this one (the one it replies to, or a forwarded one), shortened. */
function quotedMessage(message, limit, withAuthor) {
    return {
        author: withAuthor ? displayName(message) : "",
        content: shortText(message?.content, limit),
        attachments: attachmentsOf(message).map((item) => item.filename),
    };
}

/** What the message replies to: null when it replies to nothing, or Discord did not send it. */
function referenceOf(message) {
    const referenced = message?.referenced_message;
    if (!referenced || typeof referenced !== "object") return null;
    return quotedMessage(referenced, MAX_QUOTED_TEXT, true);
}

/** Forwarded messages (`message_snapshots[].message`): text and attachment names. */
function forwardedOf(message) {
    if (!Array.isArray(message?.message_snapshots)) return [];
    return message.message_snapshots
        .map((snapshot) => snapshot?.message)
        .filter((snapshot) => snapshot && typeof snapshot === "object")
        .slice(0, MAX_SNAPSHOTS)
        .map((snapshot) => quotedMessage(snapshot, MAX_FORWARDED_TEXT, false));
}

/** The text of the owner's custom status among their activities, or "". */
function customStatusText(activities) {
    if (!Array.isArray(activities)) return "";
    const custom = activities.find((activity) => activity?.type === CUSTOM_STATUS_ACTIVITY);
    return shortText(custom?.state ?? "", MAX_CUSTOM_STATUS).trim();
}

/**
 * The protocol `message` frame for a Flux MESSAGE_CREATE action, or null for one that must not
 * be forwarded (optimistic local echo, no author, webhook, system type, ephemeral). Beyond the
 * text: the author's display name, attachments (voice notes with their length), stickers, link
 * embeds, the message it replies to and forwarded messages, each shortened.
 */
function messageFrame(action, selfId) {
    const message = action?.message;
    if (!message || action.optimistic || !message.author || message.author.id == null) return null;
    if (message.webhook_id) return null;
    if (!FORWARDED_TYPES.has(message.type ?? 0)) return null;
    if ((Number(message.flags) & EPHEMERAL_FLAG) !== 0) return null;
    const channel = message.channel_id ?? action.channelId;
    if (message.id == null || channel == null) return null;
    const guild = message.guild_id ?? action.guildId ?? null;
    const authorId = String(message.author.id);
    return {
        type: "message",
        id: String(message.id),
        channel: String(channel),
        guild: guild == null ? null : String(guild),
        author: {
            id: authorId,
            username: String(message.author.username ?? ""),
            bot: Boolean(message.author.bot),
            display_name: displayName(message),
        },
        content: typeof message.content === "string" ? message.content : "",
        timestamp: message.timestamp == null ? "" : String(message.timestamp),
        self: selfId != null && authorId === selfId,
        nonce: message.nonce == null ? null : String(message.nonce),
        attachments: attachmentsOf(message),
        stickers: stickersOf(message),
        embeds: embedsOf(message),
        reference: referenceOf(message),
        forwarded: forwardedOf(message),
    };
}

/**
 * True if the server's watch list allows forwarding this frame: a rule matching the author and
 * channel, or for the owner's own messages any rule whose channel matches. The channel "@dms"
 * matches every message without a guild (a DM or a group DM).
 */
function isWatched(watch, frame) {
    return watch.some((rule) => {
        const channelMatches = rule.channel === WILDCARD || rule.channel === frame.channel || (rule.channel === DMS && frame.guild == null);
        if (!channelMatches) return false;
        return frame.self || rule.user === WILDCARD || rule.user === frame.author.id;
    });
}

/** The text of a draft's notice: who it answers, where, and the drafted reply. */
function draftNoticeText(frame, who, where) {
    return `Draft reply to ${who} ${where}: “${frame.content}”`;
}

/** Keep only well-formed {user, channel} string pairs from a server `watch` list. */
function watchList(value) {
    if (!Array.isArray(value)) return [];
    return value
        .filter((rule) => rule && typeof rule.user === "string" && typeof rule.channel === "string")
        .map((rule) => ({ user: rule.user, channel: rule.channel }));
}

/* ---------- Chats chosen from Discord: pure parts ---------- */

/** The name Discord shows for a user object (display name, else username, else id). */
function personName(user) {
    return shortText(String(user?.globalName || user?.global_name || user?.username || user?.id || "someone"), MAX_NAME);
}

/** The user ids of a DM's or group DM's recipients (ChannelRecord keeps ids; raw JSON keeps users). */
function recipientIds(channel) {
    const list = Array.isArray(channel?.recipients) ? channel.recipients : [];
    return list.map((entry) => String(entry && typeof entry === "object" ? entry.id : entry));
}

/** A server channel a rule may name: a text or announcement channel with a guild. */
function isRuleGuildChannel(channel) {
    return channel?.guild_id != null && channel?.id != null && RULE_GUILD_CHANNELS.has(channel.type);
}

/**
 * The chats a context menu can turn auto-reply on for, most specific first: `[{user, channel,
 * text, label}]` (`text` for the menu, `label` for the rule); [] when the menu is not about one.
 * `props` are Discord's menu props (`user`, `channel`, `guild`); `guildName(id)` names a server.
 */
function menuTargets(navId, props, { selfId = null, guildName = () => null } = {}) {
    const channel = props?.channel ?? null;
    if (navId === "user-context") {
        const user = props?.user;
        if (user?.id == null || String(user.id) === selfId) return [];
        const id = String(user.id);
        const name = personName(user);
        const targets = [];
        if (channel?.type === DM_CHANNEL && recipientIds(channel).includes(id)) {
            targets.push({ user: id, channel: String(channel.id), text: `Auto-reply to ${name} here`, label: `${name} (DM)` });
        } else if (isRuleGuildChannel(channel)) {
            const where = `#${channel.name} · ${guildName(String(channel.guild_id)) ?? "server"}`;
            targets.push({ user: id, channel: String(channel.id), text: `Auto-reply to ${name} in #${channel.name}`, label: `${name} in ${where}` });
        }
        targets.push({ user: id, channel: DMS, text: `Auto-reply to ${name} in all our DMs`, label: `${name} (all DMs)` });
        return targets.map((target) => ({ ...target, label: shortText(target.label, MAX_RULE_LABEL) }));
    }
    if (navId === "gdm-context" && channel?.type === GROUP_DM_CHANNEL && channel.id != null) {
        return [{ user: WILDCARD, channel: String(channel.id), text: "Auto-reply to everyone here", label: shortText(`${channel.name || "Group DM"} (group DM)`, MAX_RULE_LABEL) }];
    }
    if (navId === "channel-context" && isRuleGuildChannel(channel)) {
        const guild = props?.guild?.name ?? guildName(String(channel.guild_id)) ?? "server";
        return [{ user: WILDCARD, channel: String(channel.id), text: `Auto-reply to everyone in #${channel.name}`, label: shortText(`#${channel.name} · ${guild}`, MAX_RULE_LABEL) }];
    }
    return [];
}

/** Keep only well-formed rule objects from a server `rules` frame, and its persona names. */
function rulesState(frame) {
    const rules = (Array.isArray(frame?.rules) ? frame.rules : [])
        .filter((rule) => rule && typeof rule.user === "string" && typeof rule.channel === "string")
        .map((rule) => ({
            user: rule.user,
            channel: rule.channel,
            source: rule.source === "discord" ? "discord" : "file",
            label: typeof rule.label === "string" ? rule.label : null,
            persona: typeof rule.persona === "string" ? rule.persona : null,
            mode: typeof rule.mode === "string" ? rule.mode : null,
            reply_when: typeof rule.reply_when === "string" ? rule.reply_when : null,
            where: typeof rule.where === "string" ? rule.where : null,
        }));
    const personas = (Array.isArray(frame?.personas) ? frame.personas : []).filter((name) => typeof name === "string");
    const mode = frame?.defaults?.mode === "draft" ? "draft" : "send"; // MODE: what a rule's null mode does
    return { rules, personas, defaultMode: mode };
}

/** The rule for exactly this (user, channel) pair, or null. */
function ruleFor(rules, user, channel) {
    return rules.find((rule) => rule.user === user && rule.channel === channel) ?? null;
}

/**
 * The whole desired state of a Discord rule for `target`: `rule`'s (or the defaults), with
 * `changes`. A persona PERSONAS no longer has is sent as null (the default, which it answers
 * with anyway), since the server refuses to set an unknown one.
 */
function ruleSetFrame(target, rule, personas, changes = {}) {
    return {
        type: "rule_set",
        user: target.user,
        channel: target.channel,
        persona: personas.includes(rule?.persona) ? rule.persona : null,
        mode: rule?.mode ?? null,
        reply_when: rule?.reply_when ?? null,
        label: rule?.label ?? target.label,
        ...changes,
    };
}

/**
 * The "Auto-reply" submenu for BdApi.ContextMenu.buildItem, or null when there are no targets.
 * `state`: {connected, rules, personas, replyWhen, defaultMode}; `send(frame)` is called with rule_set / rule_remove.
 * Which items it holds depends on the targets alone (never on the rules or the connection):
 * BetterDiscord's toggle items call a React hook, and a menu that re-renders (after the rules
 * change, say) must call as many hooks as before. Items that do not apply are disabled instead.
 */
function autoReplyMenu(targets, { connected, rules, personas, replyWhen = null, defaultMode = "send" }, send) {
    if (!targets.length) return null;
    const found = targets.map((target) => ({ target, rule: ruleFor(rules, target.user, target.channel) }));
    const active = found.find((entry) => entry.rule) ?? null; // the chat's rule the options change
    const rule = active?.rule ?? null;
    const editable = rule?.source === "discord";
    const change = (changes) => () => send(ruleSetFrame(active.target, rule, personas, changes));
    const remove = (target) => () => send({ type: "rule_remove", user: target.user, channel: target.channel });
    const items = found.map(({ target, rule: own }, index) => ({
        type: "toggle",
        id: `${MENU_ID}-target-${index}`,
        label: target.text,
        checked: own !== null,
        disabled: own?.source === "file",
        action: own ? remove(target) : () => send(ruleSetFrame(target, null, personas)),
    }));
    items.push({ type: "separator" });
    if (rule && !editable) items.push({ type: "text", id: `${MENU_ID}-file`, label: `Set in ${rule.where ?? "reply_config.py"}`, disabled: true });
    const names = [...personas];
    if (rule?.persona != null && !names.includes(rule.persona)) names.push(rule.persona); // "custom", or a persona since removed
    const persona = (name, label) => ({
        type: "radio",
        id: `${MENU_ID}-persona-${name ?? "default"}`,
        group: `${MENU_ID}-persona`,
        label,
        checked: rule !== null && (rule.persona ?? null) === name,
        disabled: !editable || (name !== null && !personas.includes(name)),
        action: change({ persona: name }),
    });
    const personaLabel = (name) => (personas.includes(name) ? name : name === "custom" ? "Custom prompt" : `${name} (not in PERSONAS)`);
    items.push({ type: "submenu", id: `${MENU_ID}-persona`, label: "Persona", disabled: !editable, items: [persona(null, "Default"), ...names.map((name) => persona(name, personaLabel(name)))] });
    // Unchecking sets the other value explicitly ("send", "away"): what the person chose, whatever the config's default.
    const drafts = (rule?.mode ?? defaultMode) === "draft"; // null follows MODE, told by the rules frame
    const always = (rule?.reply_when ?? replyWhen) === "always"; // null follows REPLY_WHEN, told by away_status
    items.push({ type: "toggle", id: `${MENU_ID}-draft`, label: "Draft first", checked: drafts, disabled: !editable, action: change({ mode: drafts ? "send" : "draft" }) });
    items.push({ type: "toggle", id: `${MENU_ID}-always`, label: "Even while I'm here", checked: rule !== null && always, disabled: !editable, action: change({ reply_when: always ? "away" : "always" }) });
    items.push({ type: "text", id: `${MENU_ID}-stop`, label: "Stop auto-replying here", disabled: rule === null, action: rule ? remove(active.target) : () => {} });
    return { type: "submenu", id: MENU_ID, label: connected ? "Auto-reply" : "Auto-reply (server not connected)", disabled: !connected, items };
}

/** Add a built item to a context menu's tree, whose children may be an array or one element. */
function appendMenuItem(tree, item) {
    if (!tree?.props) return false;
    const children = tree.props.children;
    if (Array.isArray(children)) children.push(item);
    else tree.props.children = children == null ? [item] : [children, item];
    return true;
}

/**
 * The rules that cover a chat: its own, and for a DM or group DM (`dm` true) the "@dms" and "*"
 * rules of one of its `recipients` (or "@dms" of everyone).
 */
function chatRules(rules, channel, { dm = false, recipients = [] } = {}) {
    return rules.filter((rule) => {
        if (rule.channel === channel) return true;
        if (!dm || (rule.channel !== DMS && rule.channel !== WILDCARD)) return false;
        return rule.user === WILDCARD ? rule.channel === DMS : recipients.includes(rule.user);
    });
}

/**
 * The indicator's text for a chat covered by `rules`, or null when none does: whether replies go
 * out now, from each rule's reply_when (else the server's REPLY_WHEN) and the `away_status` frame.
 */
function indicatorText(rules, awayStatus) {
    if (!rules.length) return null;
    if (!awayStatus) return "Auto-reply on";
    const now = rules.some((rule) => {
        const when = rule.reply_when ?? awayStatus.reply_when;
        if (when === "always") return true;
        return awayStatus.reply_when === "away" ? Boolean(awayStatus.replying) : Boolean(awayStatus.away);
    });
    return `Auto-reply on · ${now ? "replying now" : "only while you're away"}`;
}

/** The client route of a channel: `/channels/@me/ID` for DMs, `/channels/GUILD/ID` in a server. */
function channelPath(channelId, guildId) {
    return `/channels/${guildId ?? "@me"}/${channelId}`;
}

/** True when the Discord window has keyboard focus (`document.hasFocus()`); false when unknown. */
function windowHasFocus() {
    return typeof document?.hasFocus === "function" && document.hasFocus() === true;
}

/** Resolve true as soon as `predicate()` holds, or false after `timeoutMs`. */
function until(predicate, timeoutMs, intervalMs = 50) {
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolve) => {
        const check = () => {
            if (predicate()) return resolve(true);
            if (Date.now() >= deadline) return resolve(false);
            setTimeout(check, Math.min(intervalMs, Math.max(deadline - Date.now(), 0)));
        };
        check();
    });
}

/**
 * Throttled activity reports: the first activity is reported at once, later ones at most once per
 * `intervalMs`, and the last report always carries the time of the latest activity.
 */
class ActivityReporter {
    constructor(report, { intervalMs = ACTIVITY_INTERVAL_MS, now = Date.now } = {}) {
        this.report = report;
        this.intervalMs = intervalMs;
        this.now = now;
        this.latest = null; // time of activity not yet reported
        this.lastReportAt = -Infinity;
        this.timer = null;
    }

    /** Note activity now; reports it at once or schedules the trailing report. */
    note() {
        this.latest = this.now();
        if (this.timer !== null) return;
        const wait = this.lastReportAt + this.intervalMs - this.latest;
        if (wait <= 0) return this.flush();
        this.timer = setTimeout(() => {
            this.timer = null;
            this.flush();
        }, wait);
    }

    flush() {
        if (this.latest === null) return;
        this.lastReportAt = this.now();
        const at = this.latest;
        this.latest = null;
        this.report({ type: "activity", at });
    }

    cancel() {
        clearTimeout(this.timer);
        this.timer = null;
        this.latest = null;
    }
}

/** Delay before reconnect attempt `attempt` (0-based): capped exponential, with equal jitter. */
function backoffDelay(attempt, { baseMs, capMs }, random = Math.random) {
    const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
    return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * Forwarded messages waiting for the server's `ack`, oldest first; bounded in count and age.
 * The caller sends what `pending()` returns after each `welcome`, and calls `ack(id)` per ack.
 */
class Outbox {
    constructor({ limit = BUFFER_LIMIT, maxAgeMs = BUFFER_MAX_AGE_MS, now = Date.now } = {}) {
        this.limit = limit;
        this.maxAgeMs = maxAgeMs;
        this.now = now;
        this.entries = new Map(); // id -> {frame, at}, in insertion order
    }

    /** Add a frame; returns the number of old frames dropped to stay within the bounds. */
    add(frame) {
        if (this.entries.has(frame.id)) return 0;
        this.entries.set(frame.id, { frame, at: this.now() });
        let dropped = this.expire();
        for (const id of this.entries.keys()) {
            if (this.entries.size <= this.limit) break;
            this.entries.delete(id);
            dropped += 1;
        }
        return dropped;
    }

    ack(id) {
        return this.entries.delete(id);
    }

    /** Drop frames older than maxAgeMs; returns how many. */
    expire() {
        const oldest = this.now() - this.maxAgeMs;
        let dropped = 0;
        for (const [id, entry] of this.entries) {
            if (entry.at >= oldest) break;
            this.entries.delete(id);
            dropped += 1;
        }
        return dropped;
    }

    /** The frames still unacknowledged, oldest first. */
    pending() {
        this.expire();
        return [...this.entries.values()].map((entry) => entry.frame);
    }

    /** Drop frames the predicate rejects (e.g. no longer watched); returns how many. */
    retain(predicate) {
        let dropped = 0;
        for (const [id, entry] of this.entries) {
            if (predicate(entry.frame)) continue;
            this.entries.delete(id);
            dropped += 1;
        }
        return dropped;
    }

    get size() {
        return this.entries.size;
    }
}

/**
 * The `send` nonces posted (or being posted), each with the promise of its outcome (null, or the
 * error text), so that a `send` repeated after a lost connection is answered from the first post
 * instead of posting again. Bounded in count and age; a failed post is forgotten, so it may be
 * tried again. `saved` (from `toSaved()`, kept with BdApi.Data) carries the posts that succeeded
 * over a reload of Discord or of the plugin.
 */
class PostedNonces {
    constructor({ limit = POSTED_NONCES_LIMIT, maxAgeMs = POSTED_NONCES_MAX_AGE_MS, now = Date.now, saved } = {}) {
        this.limit = limit;
        this.maxAgeMs = maxAgeMs;
        this.now = now;
        this.entries = new Map(); // nonce -> {outcome, at, posted}, oldest first
        for (const entry of Array.isArray(saved) ? saved : []) {
            const [nonce, at] = Array.isArray(entry) ? entry : [];
            if (typeof nonce === "string" && nonce && Number.isFinite(at)) {
                this.entries.set(nonce, { outcome: Promise.resolve(null), at, posted: true });
            }
        }
        this.expire();
    }

    /** Note that the post with `nonce` succeeded. */
    posted(nonce) {
        const entry = this.entries.get(nonce);
        if (entry) entry.posted = true;
    }

    /** `[nonce, time]` of each recent post that succeeded, oldest first: what to keep on disk. */
    toSaved() {
        this.expire();
        return [...this.entries].filter(([, entry]) => entry.posted).map(([nonce, entry]) => [nonce, entry.at]);
    }

    /** The outcome promise of a recent post with this nonce, or undefined. */
    get(nonce) {
        this.expire();
        return this.entries.get(nonce)?.outcome;
    }

    add(nonce, outcome) {
        this.entries.set(nonce, { outcome, at: this.now() });
        for (const oldest of this.entries.keys()) {
            if (this.entries.size <= this.limit) break;
            this.entries.delete(oldest);
        }
    }

    /** Forget `nonce` if it still stands for this `outcome`. */
    forget(nonce, outcome) {
        if (this.entries.get(nonce)?.outcome === outcome) this.entries.delete(nonce);
    }

    expire() {
        const oldest = this.now() - this.maxAgeMs;
        for (const [nonce, entry] of this.entries) {
            if (entry.at >= oldest) break;
            this.entries.delete(nonce);
        }
    }
}

/** The `sendMessage` arguments for a server `send` frame: ping nobody, reply when asked. */
function sendMessageArgs(frame, guildId) {
    const message = { content: frame.content, tts: false, invalidEmojis: [], validNonShortcutEmojis: [] };
    const options = { allowedMentions: { parse: [], replied_user: false } };
    // The server's nonce lets it recognise the echo of its own reply, where the client keeps it.
    if (frame.nonce) options.nonce = String(frame.nonce);
    if (frame.reply_to) {
        options.messageReference = { channel_id: frame.channel, message_id: frame.reply_to };
        if (guildId) options.messageReference.guild_id = guildId;
    }
    return [frame.channel, message, undefined, options];
}

/** A short, secret-free description of why a request failed (Node's error code when there is one). */
function describeFailure(error) {
    const code = error?.code ?? error?.cause?.code;
    const text = String(error?.message ?? error ?? "unknown error");
    return code && !text.includes(code) ? `${text} (${code})` : text;
}

/**
 * Why an attempt ended before any welcome: `{text, atOnce, answered}`. `atOnce` marks a WebSocket
 * that failed before opening within FAILED_AT_ONCE_MS, as one blocked by Local Network Access does;
 * `answered` an HTTP attempt that reached a server (an HTTP status, or a session opened).
 */
function describeEnd(transport, { code, reason, elapsedMs, opened }) {
    const atOnce = transport === "websocket" && !opened && elapsedMs < FAILED_AT_ONCE_MS;
    const answered = transport === "http" && (opened || /^HTTP \d/.test(reason ?? "") || (code != null && code !== CLOSE_ABNORMAL));
    let text;
    if (code === CLOSE_ABNORMAL || code == null) {
        const what = transport === "websocket" && !opened ? "refused before the handshake" : "lost before any welcome";
        text = `${reason ? `${reason}; ` : ""}${what} after ${elapsedMs} ms`;
    } else {
        text = `closed ${code}${reason ? `: ${reason}` : ""}`;
    }
    return { text, atOnce, answered };
}

/**
 * The protocol's frames over plain HTTP on the server's port, through `BdApi.Net.fetch`: for when
 * Discord's Chromium blocks WebSockets to 127.0.0.1 (Local Network Access). `Net.fetch` runs in
 * BetterDiscord's preload with Node's http, outside the page, so neither LNA nor CORS applies and
 * no Origin is sent. To the plugin it looks like a WebSocket: `readyState`, `send`, `close`, and
 * `onopen`, `onmessage`, `onerror`, `onclose` (code 4001 for a refused secret, 1006 for a lost link).
 *
 * Frames go up in order, one POST at a time; the server's frames come down numbered, by long polls
 * that each confirm (`after`) what arrived, so a poll broken on the way loses nothing: the server
 * gives those frames again.
 */
class HttpLink {
    /** `replaces`: the session of this plugin's previous link, which the server ends at once. */
    constructor(baseUrl, secret, fetch, { pollWaitMs = HTTP_POLL_WAIT_MS, replaces = null } = {}) {
        this.baseUrl = baseUrl;
        this.fetch = fetch;
        this.headers = { Authorization: `Bearer ${secret}` };
        this.pollWaitMs = pollWaitMs;
        this.replaces = replaces;
        this.readyState = 0; // CONNECTING, as a WebSocket's
        this.session = null;
        this.after = 0; // the last server frame received
        this.queue = []; // frames waiting to be posted
        this.posting = false;
        this.aborter = new AbortController();
        this.onopen = this.onmessage = this.onerror = this.onclose = null;
        Promise.resolve().then(() => this.open());
    }

    request(path, { method = "GET", body, timeout = HTTP_REQUEST_TIMEOUT_MS, query = {}, signal = this.aborter.signal } = {}) {
        const search = String(new URLSearchParams({ ...(this.session ? { session: this.session } : {}), ...query }));
        const headers = body === undefined ? this.headers : { ...this.headers, "Content-Type": "application/x-ndjson" };
        return this.fetch(`${this.baseUrl}/plugin/${path}${search ? `?${search}` : ""}`, { method, headers, body, timeout, signal });
    }

    async open() {
        let response;
        try {
            response = await this.request("open", { method: "POST", query: this.replaces ? { replaces: this.replaces } : {} });
        } catch (error) {
            return this.end(CLOSE_ABNORMAL, describeFailure(error));
        }
        if (response.status === 401) return this.end(CLOSE_BAD_SECRET, "bad secret");
        if (!response.ok) return this.end(CLOSE_ABNORMAL, `HTTP ${response.status} from ${this.baseUrl}/plugin/open`);
        try {
            this.session = String((await response.json()).session);
        } catch (error) {
            return this.end(CLOSE_ABNORMAL, `not the auto-reply server's answer: ${describeFailure(error)}`);
        }
        if (this.readyState !== 0) return undefined;
        this.readyState = 1;
        this.onopen?.({});
        return this.poll();
    }

    send(data) {
        if (this.readyState !== 1) throw new Error("the HTTP link is not open");
        this.queue.push(String(data));
        void this.post();
    }

    async post() {
        if (this.posting) return;
        this.posting = true;
        try {
            while (this.queue.length && this.readyState === 1) {
                const batch = this.queue.splice(0, HTTP_FRAMES_PER_POST);
                const response = await this.request("frames", { method: "POST", body: batch.join("\n") });
                if (!response.ok) return this.end(CLOSE_ABNORMAL, `HTTP ${response.status} posting frames`);
            }
        } catch (error) {
            this.end(CLOSE_ABNORMAL, describeFailure(error));
        } finally {
            this.posting = false;
        }
        return undefined;
    }

    async poll() {
        let failures = 0;
        while (this.readyState === 1) {
            let answer;
            try {
                const query = { after: String(this.after), wait: String(this.pollWaitMs / 1000) };
                const response = await this.request("poll", { query, timeout: this.pollWaitMs + HTTP_POLL_TIMEOUT_MARGIN_MS });
                if (response.status === 404) return this.end(CLOSE_ABNORMAL, "the server no longer knows this session (restarted?)");
                if (!response.ok) throw new Error(`HTTP ${response.status} polling`);
                answer = await response.json();
                failures = 0;
            } catch (error) {
                if (this.readyState !== 1) return undefined;
                failures += 1;
                if (failures > HTTP_POLL_RETRIES) return this.end(CLOSE_ABNORMAL, describeFailure(error));
                continue;
            }
            for (const entry of Array.isArray(answer?.frames) ? answer.frames : []) {
                if (!(entry?.seq > this.after)) continue; // given again after a broken poll
                this.after = entry.seq;
                this.onmessage?.({ data: JSON.stringify(entry.frame) });
                if (this.readyState !== 1) return undefined;
            }
            if (answer?.closed) return this.end(Number(answer.closed.code), String(answer.closed.reason ?? ""));
        }
        return undefined;
    }

    /** The link ended under us: as a WebSocket, `error` first when it was not a clean close. */
    end(code, reason) {
        if (this.readyState === 3) return;
        this.readyState = 3;
        this.aborter.abort();
        if (code === CLOSE_ABNORMAL) this.onerror?.({ message: reason });
        this.onclose?.({ code, reason, wasClean: code !== CLOSE_ABNORMAL });
    }

    /** Close from our side: stop polling and tell the server (best effort); no events. */
    close() {
        if (this.readyState === 3) return;
        const hadSession = this.readyState === 1;
        this.readyState = 3;
        this.aborter.abort();
        if (hadSession) this.request("close", { method: "POST", signal: null }).catch(() => {});
    }
}

/**
 * The settings to use: saved values over the defaults, except where the installer has written a
 * new default since the defaults seen at the last start (or the factory ones, the first time), so
 * re-running `plugin install` after a new secret wins over the old saved secret.
 */
function startupSettings(stored, defaults, lastDefaults) {
    const seen = lastDefaults && typeof lastDefaults === "object" ? lastDefaults : FACTORY_SETTINGS;
    const settings = { ...(stored && typeof stored === "object" ? stored : {}) };
    for (const key of Object.keys(defaults)) {
        if (seen[key] !== defaults[key]) settings[key] = defaults[key];
    }
    return normalizeSettings(settings);
}

/** The server's URL for the settings (`ws://`, or `http://` for the HTTP transport); IPv6 gets brackets. */
function serverUrl({ host, port }, scheme = "ws") {
    const bracketed = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
    return `${scheme}://${bracketed}:${port}`;
}

function normalizeSettings(stored) {
    const settings = { ...DEFAULT_SETTINGS, ...(stored && typeof stored === "object" ? stored : {}) };
    const port = Number(settings.port);
    return {
        host: String(settings.host || DEFAULT_SETTINGS.host).trim(),
        port: Number.isInteger(port) && port > 0 && port < 65536 ? port : DEFAULT_SETTINGS.port,
        secret: String(settings.secret ?? ""),
        enabled: settings.enabled !== false,
        transport: TRANSPORTS.some(([value]) => value === settings.transport) ? settings.transport : "auto",
    };
}

/** The transports to try in one round: the forced one, or in "auto" the last that worked first. */
function transportOrder(setting, lastWorking) {
    if (setting === "websocket" || setting === "http") return [setting];
    return lastWorking === "http" ? ["http", "websocket"] : ["websocket", "http"];
}

/* ---------- The plugin: Flux in, websocket out, replies back into Discord ---------- */

const STATUS_TEXT = {
    disabled: "disabled",
    connecting: "connecting",
    connected: "connected",
    reconnecting: "reconnecting",
    "bad secret": "bad secret: copy WEBSOCKET_SECRET from config.json",
};
const STATUS_TRANSPORT = { websocket: "over WebSocket", http: "over HTTP (BetterDiscord's Net.fetch)" };

module.exports = class DiscordAutoReply {
    /**
     * BetterDiscord passes the meta header; tests may pass
     * `{backoff: {baseMs, capMs}, welcomeTimeoutMs, openChannelTimeoutMs, activityIntervalMs, httpPollWaitMs}`.
     */
    constructor(meta, options = {}) {
        this.meta = meta ?? { name: PLUGIN_NAME, version: PLUGIN_VERSION };
        this.api = new BdApi(this.meta.name ?? PLUGIN_NAME);
        this.backoff = { ...BACKOFF, ...(options.backoff ?? {}) };
        this.welcomeTimeoutMs = options.welcomeTimeoutMs ?? WELCOME_TIMEOUT_MS;
        this.welcomeTimer = null;
        this.outbox = new Outbox(options.outbox);
        this.postedNonces = new PostedNonces({ saved: this.api.Data.load("postedNonces"), ...options.postedNonces });
        this.watch = null; // null until the server first tells us; then the allow-list
        this.status = "disabled";
        this.socket = null;
        this.transport = null; // the transport of `socket`: "websocket" or "http"
        this.lastWorking = null; // the transport last welcomed, tried first in "auto"
        this.failures = {}; // transport -> why it failed in the current round of attempts
        this.transportNote = null; // why "auto" uses HTTP, shown in the settings panel
        this.httpPollWaitMs = options.httpPollWaitMs ?? HTTP_POLL_WAIT_MS;
        this.lastHttpSession = null; // the session of the last HTTP link, ended by the next one
        this.welcomed = false;
        this.attempt = 0;
        this.retryTimer = null;
        this.running = false;
        this.dispatcher = null;
        this.statusElement = null;
        this.recentIds = new Set();
        this.guildOfChannel = new Map();
        this.warned = new Set();
        this.onMessageCreate = this.onMessageCreate.bind(this);
        this.openChannelTimeoutMs = options.openChannelTimeoutMs ?? OPEN_CHANNEL_TIMEOUT_MS;
        // Activity is only reported to a server that welcomed us (a frame before hello is refused).
        this.activity = new ActivityReporter((frame) => this.welcomed && this.send(frame), { intervalMs: options.activityIntervalMs });
        this.onActivity = this.onActivity.bind(this);
        this.onPresenceChange = this.onPresenceChange.bind(this);
        this.watchedPresence = [];
        this.reportedStatus = null; // the status last told to the server
        this.reportedCustomStatus = null; // and the custom status text with it
        this.awayStatus = null; // the server's away_status
        this.awaySelect = null;
        this.awayNoteInput = null;
        this.draftNotices = new Map(); // draft id -> function closing its notice
        this.rules = null; // the server's last `rules` frame: {rules, personas}; null before one
        this.menuUnpatches = [];
        this.rulesElement = null; // the settings panel's "Watched chats" list
        this.indicator = null; // the pill shown while the selected chat is watched
        this.onChannelSelect = this.onChannelSelect.bind(this);
    }

    start() {
        this.running = true;
        this.toldUnreachable = false;
        const { Data } = this.api;
        this.settings = startupSettings(Data.load("settings"), DEFAULT_SETTINGS, Data.load("installedDefaults"));
        Data.save("settings", this.settings);
        Data.save("installedDefaults", DEFAULT_SETTINGS);
        const saved = this.api.Data.load("watch");
        this.watch = Array.isArray(saved) ? watchList(saved) : null;
        this.dispatcher = DiscordInternals.dispatcher();
        if (this.dispatcher) {
            this.dispatcher.subscribe("MESSAGE_CREATE", this.onMessageCreate);
        } else {
            this.toast("Discord's message dispatcher was not found; no messages can be forwarded", "error");
        }
        if (!DiscordInternals.userStore()) {
            this.toast("Discord's UserStore was not found; your own messages cannot be recognised, so nothing is forwarded", "error");
        }
        if (!DiscordInternals.messageActions()) {
            this.toast("Discord's message-sending module was not found; in-client sending is off", "warning");
        }
        this.listenForActivity(true);
        this.watchPresence();
        this.patchMenus();
        this.dispatcher?.subscribe("CHANNEL_SELECT", this.onChannelSelect);
        this.connect();
    }

    stop() {
        this.running = false;
        if (this.dispatcher) this.dispatcher.unsubscribe("MESSAGE_CREATE", this.onMessageCreate);
        this.dispatcher?.unsubscribe("CHANNEL_SELECT", this.onChannelSelect);
        this.dispatcher = null;
        for (const unpatch of this.menuUnpatches) unpatch();
        this.menuUnpatches = [];
        this.listenForActivity(false);
        this.unwatchPresence();
        this.closeDraftNotices();
        this.disconnect();
        this.setStatus("disabled");
        this.indicator?.remove();
        this.indicator = null;
    }

    /* ----- Discord -> server ----- */

    onMessageCreate(action) {
        try {
            this.forward(action);
        } catch (error) {
            this.warnOnce("forward", "could not handle a MESSAGE_CREATE event", error);
        }
    }

    forward(action) {
        if (action?.optimistic) return;
        const selfId = DiscordInternals.currentUserId();
        if (selfId == null) {
            this.warnOnce("self", "your user id is unknown (UserStore missing?), so your own messages cannot be told apart; forwarding nothing");
            return;
        }
        const frame = messageFrame(action, selfId);
        if (!frame || this.recentIds.has(frame.id)) return;
        if (this.watch !== null && !isWatched(this.watch, frame)) return;
        this.remember(frame);
        const dropped = this.outbox.add(frame);
        if (dropped) this.warnOnce("overflow", `buffer full or stale: dropped ${dropped} unacknowledged message(s)`);
        if (this.welcomed) this.send(frame);
        this.renderStatus();
    }

    remember(frame) {
        this.recentIds.add(frame.id);
        if (this.recentIds.size > 1000) this.recentIds.delete(this.recentIds.values().next().value);
        if (frame.guild) this.guildOfChannel.set(frame.channel, frame.guild);
    }

    /** After a welcome: forget what is no longer watched, then send the rest in order. */
    flush() {
        if (this.watch !== null) this.outbox.retain((frame) => isWatched(this.watch, frame));
        for (const frame of this.outbox.pending()) this.send(frame);
    }

    /* ----- the person's own activity, so that the GUI macro never types over them ----- */

    listenForActivity(on) {
        if (typeof document?.addEventListener !== "function") return;
        for (const type of ACTIVITY_EVENTS) {
            if (on) document.addEventListener(type, this.onActivity, { capture: true, passive: true });
            else document.removeEventListener(type, this.onActivity, { capture: true });
        }
        if (!on) this.activity.cancel();
    }

    onActivity(event) {
        if (event?.isTrusted === false) return; // dispatched by a script, not the person
        this.activity.note();
    }

    /* ----- the websocket ----- */

    connect() {
        clearTimeout(this.retryTimer);
        this.retryTimer = null;
        if (!this.running || !this.settings.enabled) return this.setStatus("disabled");
        if (this.socket) return;
        const order = transportOrder(this.settings.transport, this.lastWorking);
        const transport = order.find((name) => !(name in this.failures)) ?? order[0];
        let socket;
        try {
            socket = this.openLink(transport);
        } catch (error) {
            this.failures[transport] = { text: describeFailure(error), atOnce: false, answered: false };
            return this.nextAttempt();
        }
        this.socket = socket;
        this.transport = transport;
        this.welcomed = false;
        if (this.status !== "reconnecting") this.setStatus("connecting");
        const startedAt = Date.now();
        let ended = false;
        let opened = false;
        const end = (code, reason) => {
            if (ended) return;
            ended = true;
            this.onSocketEnded(socket, code, { reason, elapsedMs: Date.now() - startedAt, opened });
        };
        const giveUp = (why) => {
            end(null, why);
            try {
                socket.close();
            } catch {
                // already closing
            }
        };
        this.welcomeTimer = setTimeout(() => {
            this.warnOnce("silent", `no welcome from ${this.linkUrl(transport)} within ${this.welcomeTimeoutMs} ms; is that the auto-reply server?`);
            giveUp(`no welcome within ${this.welcomeTimeoutMs} ms`);
        }, this.welcomeTimeoutMs);
        socket.onopen = () => {
            opened = true;
            this.send({
                type: "hello",
                secret: this.settings.secret,
                client: PLUGIN_NAME,
                version: PLUGIN_VERSION,
                self_id: DiscordInternals.currentUserId(),
            });
        };
        socket.onmessage = (event) => this.onFrame(socket, event.data);
        // A refused connection may fire only `error` (Node 20): treat either as the end, once.
        socket.onerror = (event) => giveUp(event?.message);
        socket.onclose = (event) => end(event.code, event.reason);
    }

    /** A WebSocket, or an HTTP link through BdApi.Net.fetch; throws when that transport is unavailable. */
    openLink(transport) {
        if (transport === "websocket") return new WebSocket(serverUrl(this.settings));
        const fetch = BdApi.Net?.fetch;
        if (typeof fetch !== "function") throw new Error("BdApi.Net.fetch is missing: the HTTP transport needs BetterDiscord 1.9.4 or newer");
        return new HttpLink(serverUrl(this.settings, "http"), this.settings.secret, fetch, { pollWaitMs: this.httpPollWaitMs, replaces: this.lastHttpSession });
    }

    linkUrl(transport) {
        return transport === "http" ? `${serverUrl(this.settings, "http")}/plugin/` : serverUrl(this.settings);
    }

    disconnect() {
        clearTimeout(this.retryTimer);
        clearTimeout(this.welcomeTimer);
        this.retryTimer = null;
        const socket = this.socket;
        this.socket = null;
        this.transport = null;
        this.welcomed = false;
        this.failures = {};
        if (!socket) return;
        socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
        try {
            socket.close(1000, "plugin stopped");
        } catch {
            // closing a socket that never opened may throw; it is gone either way
        }
    }

    onSocketEnded(socket, code, { reason, elapsedMs = 0, opened = false } = {}) {
        if (socket !== this.socket) return;
        clearTimeout(this.welcomeTimer);
        const wasWelcomed = this.welcomed;
        const transport = this.transport;
        if (socket.session) this.lastHttpSession = socket.session;
        this.socket = null;
        this.transport = null;
        this.welcomed = false;
        if (!this.running || !this.settings.enabled) return this.setStatus("disabled");
        if (code === CLOSE_BAD_SECRET) {
            this.setStatus("bad secret");
            this.toast("the server refused the secret; copy WEBSOCKET_SECRET from config.json into the plugin settings", "error");
            return;
        }
        if (wasWelcomed) {
            this.failures = {};
            this.toast("lost the connection to the auto-reply server; reconnecting", "warning");
            return this.scheduleReconnect();
        }
        this.failures[transport] = describeEnd(transport, { code, reason, elapsedMs, opened });
        return this.nextAttempt();
    }

    /** After a failed attempt: the round's next transport at once; when all failed, the backoff. */
    nextAttempt() {
        const order = transportOrder(this.settings.transport, this.lastWorking);
        if (order.some((name) => !(name in this.failures))) return this.connect();
        if (this.status !== "reconnecting" && !this.toldUnreachable) {
            this.toldUnreachable = true;
            const why = order.map((name) => `${TRANSPORT_NAMES[name]}: ${this.failures[name].text}`).join("; ");
            const blocked = this.failures.websocket?.atOnce && this.failures.http?.answered
                ? ". The WebSocket was refused at once while HTTP answers: Discord's Chromium may be blocking local WebSockets (Local Network Access)"
                : "";
            this.toast(`the auto-reply server at ${this.settings.host}:${this.settings.port} is not reachable (${why})${blocked}; retrying in the background`, "warning");
        }
        this.lastFailures = this.failures;
        this.failures = {};
        this.renderStatus();
        return this.scheduleReconnect();
    }


    scheduleReconnect() {
        const delay = backoffDelay(this.attempt, this.backoff);
        this.attempt += 1;
        this.setStatus("reconnecting");
        this.retryTimer = setTimeout(() => this.connect(), delay);
    }

    send(frame) {
        if (this.socket?.readyState !== 1) return false;
        this.socket.send(JSON.stringify(frame));
        return true;
    }

    /* ----- server -> plugin ----- */

    onFrame(socket, data) {
        if (socket !== this.socket) return;
        let frame;
        try {
            frame = JSON.parse(String(data));
        } catch {
            return this.warnOnce("json", "the server sent a frame that is not JSON");
        }
        if (!frame || typeof frame !== "object") return;
        if (frame.type === "welcome") return this.onWelcome(frame);
        if (!this.welcomed) return;
        switch (frame.type) {
            case "watch":
                return this.setWatch(frame.watch);
            case "ack":
                this.outbox.ack(String(frame.id));
                return this.renderStatus();
            case "send":
                return void this.sendToDiscord(frame);
            case "typing":
                return this.showTyping(frame);
            case "open_channel":
                return void this.openChannel(frame);
            case "away_status":
                return this.onAwayStatus(frame);
            case "draft":
                return this.showDraft(frame);
            case "draft_done":
                return this.onDraftDone(frame);
            case "summary":
                return this.showSummary(frame);
            case "rules":
                return this.onRules(frame);
            case "rule_result":
                return this.toast(String(frame.text ?? ""), frame.ok ? "success" : "error");
            case "error":
                return this.api.Logger.warn(`server says: ${frame.error}`);
            default:
                return undefined;
        }
    }

    onWelcome(frame) {
        clearTimeout(this.welcomeTimer);
        this.welcomed = true;
        this.attempt = 0;
        this.lastWorking = this.transport;
        this.noteTransport();
        this.failures = {};
        this.lastFailures = null;
        this.toldUnreachable = false;
        this.setWatch(frame.watch);
        this.setStatus("connected");
        this.toast(`connected to the auto-reply server ${STATUS_TRANSPORT[this.transport]} (${this.watch.length} watched pair(s))`, "success");
        if (frame.messenger === "macro" && !(DiscordInternals.router() && DiscordInternals.selectedChannelStore())) {
            this.toast("Discord's router or SelectedChannelStore was not found; the GUI macro will not type anything", "error");
        }
        this.flush();
        this.reportPresence(true);
    }

    /** After a welcome over HTTP in "auto": say why the WebSocket was not used (once per cause). */
    noteTransport() {
        const failed = this.failures.websocket;
        if (this.transport !== "http" || !failed) {
            if (this.transport === "websocket") this.transportNote = null;
            return;
        }
        this.transportNote = failed.atOnce
            ? `the WebSocket was refused at once (${failed.text}) while HTTP works: Discord's Chromium blocks local WebSockets (Local Network Access), so the plugin uses HTTP through BetterDiscord's Net.fetch`
            : `the WebSocket failed (${failed.text}); using HTTP through BetterDiscord's Net.fetch`;
        this.warnOnce(`transport:${failed.atOnce}`, this.transportNote);
    }

    setWatch(value) {
        this.watch = watchList(value);
        this.api.Data.save("watch", this.watch);
        this.renderStatus();
    }

    /** Post a `send` frame once per nonce, and answer `sent`; a repeat gets the first post's outcome. */
    async sendToDiscord(frame) {
        const nonce = String(frame.nonce ?? "");
        let outcome = nonce ? this.postedNonces.get(nonce) : undefined;
        const fresh = !outcome;
        if (fresh) {
            outcome = this.postToDiscord(frame);
            if (nonce) this.postedNonces.add(nonce, outcome);
        }
        const error = await outcome;
        if (error !== null) {
            this.postedNonces.forget(nonce, outcome);
        } else if (fresh && nonce) {
            // On disk at once: a reload before our `sent` reaches the server must not post it again.
            this.postedNonces.posted(nonce);
            this.api.Data.save("postedNonces", this.postedNonces.toSaved());
        }
        this.send({ type: "sent", nonce, ok: error === null, error });
    }

    /**
     * Show the asked channel with Discord's router, then answer with the channel Discord shows and
     * whether its window has focus: the GUI macro types only when both are right.
     */
    async openChannel(frame) {
        const nonce = String(frame.nonce ?? "");
        const wanted = typeof frame.channel === "string" && frame.channel ? frame.channel : null;
        let error = null;
        if (wanted === null) {
            error = "open_channel frame needs a string channel";
        } else if (!DiscordInternals.selectedChannelStore()) {
            error = "Discord's SelectedChannelStore was not found in the client, so no channel can be confirmed";
        } else if (DiscordInternals.selectedChannelId() !== wanted) {
            try {
                const guild = DiscordInternals.guildOf(wanted) ?? this.guildOfChannel.get(wanted) ?? null;
                if (DiscordInternals.navigate(channelPath(wanted, guild))) {
                    await until(() => DiscordInternals.selectedChannelId() === wanted, this.openChannelTimeoutMs);
                } else {
                    error = "Discord's router was not found in the client";
                }
            } catch (failure) {
                error = `could not open the channel: ${failure?.message ?? String(failure)}`;
            }
        }
        const shown = DiscordInternals.selectedChannelId();
        if (error === null && shown !== wanted) {
            error = `Discord still shows ${shown === null ? "no channel" : `channel ${shown}`} after ${this.openChannelTimeoutMs} ms`;
        }
        this.send({ type: "opened", nonce, channel: shown, ok: error === null, focused: windowHasFocus(), error });
    }

    /** Post with Discord's own message-sending module; resolves to null, or the error text. */
    async postToDiscord(frame) {
        const actions = DiscordInternals.messageActions();
        if (!actions) return "Discord's message-sending module was not found in the client";
        if (typeof frame.channel !== "string" || typeof frame.content !== "string") return "send frame needs a string channel and content";
        try {
            await actions.sendMessage(...sendMessageArgs(frame, this.guildOfChannel.get(frame.channel)));
            return null;
        } catch (failure) {
            return `sendMessage failed: ${failure?.message ?? String(failure)}`;
        }
    }

    showTyping(frame) {
        try {
            if (!DiscordInternals.startTyping(String(frame.channel))) {
                this.warnOnce("typing", "Discord's typing module was not found; no typing indicator");
            }
        } catch (error) {
            this.warnOnce("typing-failed", "could not show the typing indicator", error);
        }
    }

    /* ----- settings and status ----- */

    getSettingsPanel() {
        const panel = document.createElement("div");
        panel.style.padding = "8px 0";
        const field = (label, input) => {
            const row = document.createElement("label");
            row.style.display = "block";
            row.style.margin = "8px 0";
            row.textContent = label + " ";
            row.appendChild(input);
            panel.appendChild(row);
        };
        const input = (name, type, value) => {
            const element = document.createElement("input");
            element.name = name;
            element.type = type;
            if (type === "checkbox") element.checked = value;
            else element.value = String(value);
            element.addEventListener("change", () => {
                this.updateSettings({ [name]: type === "checkbox" ? element.checked : element.value });
            });
            return element;
        };
        const settings = this.settings ?? normalizeSettings(this.api.Data.load("settings"));
        field("Server host", input("host", "text", settings.host));
        field("Server port", input("port", "number", settings.port));
        field("Secret (WEBSOCKET_SECRET in config.json)", input("secret", "password", settings.secret));
        field("Enabled", input("enabled", "checkbox", settings.enabled));
        field("Connect with", this.choice("transport", TRANSPORTS, settings.transport, (value) => this.updateSettings({ transport: value })));
        field("Away mode (replies go out only while you are away)", this.awaySwitch());
        field("Away note (the replies may tell it; empty: AWAY_NOTE, else your custom status)", this.awayNoteField());
        panel.appendChild(this.textElement("h3", "Watched chats"));
        this.rulesElement = document.createElement("div");
        this.rulesElement.className = "discord-auto-reply-rules";
        panel.appendChild(this.rulesElement);
        this.renderRules();
        this.statusElement = document.createElement("div");
        this.statusElement.className = "discord-auto-reply-status";
        panel.appendChild(this.statusElement);
        this.renderStatus();
        return panel;
    }

    /** Save changed settings and reconnect with them. */
    updateSettings(changes) {
        this.settings = normalizeSettings({ ...(this.settings ?? this.api.Data.load("settings")), ...changes });
        this.api.Data.save("settings", this.settings);
        if (!this.running) return;
        this.disconnect();
        this.attempt = 0;
        this.connect();
    }

    statusLine() {
        const watched = this.watch === null ? "watch list not received yet" : `${this.watch.length} watched pair(s)`;
        const away = this.awayStatus ? ` · ${this.awayStatus.replying ? "replying for you now" : "not replying now"}` : "";
        const over = this.welcomed && this.transport ? ` ${STATUS_TRANSPORT[this.transport]}` : "";
        const failed = !this.welcomed && this.lastFailures
            ? ` (last try: ${Object.entries(this.lastFailures).map(([name, failure]) => `${TRANSPORT_NAMES[name]} ${failure.text}`).join("; ")})`
            : "";
        const note = this.welcomed && this.transportNote ? ` · ${this.transportNote}` : "";
        return `Status: ${STATUS_TEXT[this.status] ?? this.status}${over}${failed} · ${watched} · ${this.outbox.size} unacknowledged${away}${note}`;
    }

    setStatus(status) {
        if (status === this.status) return;
        this.status = status;
        const where = this.settings ? ` (${serverUrl(this.settings)})` : "";
        this.api.Logger.info(`${STATUS_TEXT[status] ?? status}${where}`);
        this.renderStatus();
    }

    renderStatus() {
        if (this.statusElement) this.statusElement.textContent = this.statusLine();
        this.renderIndicator();
    }

    /* ----- away mode: the owner's status, the switch, the summary on return ----- */

    watchPresence() {
        this.watchedPresence = DiscordInternals.presenceStores();
        for (const store of this.watchedPresence) store.addChangeListener(this.onPresenceChange);
        if (!this.watchedPresence.length) {
            this.toast("Discord's presence stores were not found; the server counts you as present unless you switch away mode on", "warning");
        }
    }

    unwatchPresence() {
        for (const store of this.watchedPresence) store.removeChangeListener(this.onPresenceChange);
        this.watchedPresence = [];
        this.reportedStatus = null;
        this.reportedCustomStatus = null;
    }

    onPresenceChange() {
        try {
            this.reportPresence(false);
        } catch (error) {
            this.warnOnce("presence", "could not read your Discord status", error);
        }
    }

    /** Tell the server the owner's status: at each welcome (`force`), then on every change. */
    reportPresence(force) {
        const status = DiscordInternals.ownStatus();
        if (status === null || !this.welcomed) return;
        const customStatus = DiscordInternals.ownCustomStatus();
        if (!force && status === this.reportedStatus && customStatus === this.reportedCustomStatus) return;
        const selfId = DiscordInternals.currentUserId();
        const name = selfId == null ? null : DiscordInternals.userName(selfId);
        if (this.send({ type: "presence", status, custom_status: customStatus, ...(name ? { name } : {}) })) {
            this.reportedStatus = status;
            this.reportedCustomStatus = customStatus;
        }
    }

    onAwayStatus(frame) {
        this.awayStatus = frame;
        if (this.awaySelect) this.awaySelect.value = String(frame.switch);
        this.showAwayNote();
        this.renderStatus();
    }

    /* ----- chats chosen from Discord: context menus, the watched list, the indicator ----- */

    patchMenus() {
        const menu = DiscordInternals.contextMenu();
        if (!menu) {
            this.toast("BetterDiscord's ContextMenu API was not found; choose chats in reply_config.py or with `discord-auto-reply rules add`", "warning");
            return;
        }
        for (const navId of MENU_NAV_IDS) {
            this.menuUnpatches.push(menu.patch(navId, (tree, props) => this.addMenuItems(menu, navId, tree, props)));
        }
    }

    /** BetterDiscord calls this on every render of a patched menu: add our submenu to its tree. */
    addMenuItems(menu, navId, tree, props) {
        try {
            const targets = menuTargets(navId, props, { selfId: DiscordInternals.currentUserId(), guildName: (id) => DiscordInternals.guildName(id) });
            const state = { connected: this.welcomed, replyWhen: this.awayStatus?.reply_when ?? null, ...(this.rules ?? { rules: [], personas: [] }) };
            const setup = autoReplyMenu(targets, state, (frame) => this.requestRule(frame));
            if (setup) appendMenuItem(tree, menu.buildItem(setup));
        } catch (error) {
            this.warnOnce(`menu:${navId}`, `could not add the Auto-reply items to Discord's ${navId} menu`, error);
        }
    }

    /** Send a rule_set / rule_remove; the server's rule_result comes back as a toast. */
    requestRule(frame) {
        if (!this.send(frame)) this.toast("not connected to the auto-reply server: nothing changed", "error");
    }

    onRules(frame) {
        this.rules = rulesState(frame);
        this.renderRules();
        this.renderIndicator();
    }

    /** The settings panel's "Watched chats": each rule by name, Discord rules with a Remove button. */
    renderRules() {
        const list = this.rulesElement;
        if (!list) return;
        list.replaceChildren();
        const rules = this.rules?.rules;
        if (!rules) return void list.appendChild(this.textElement("div", "No list from the server yet."));
        if (!rules.length) list.appendChild(this.textElement("div", "None: right-click a person, a DM or a channel and choose Auto-reply."));
        for (const rule of rules) {
            const row = document.createElement("div");
            row.className = "discord-auto-reply-rule";
            row.style.margin = "4px 0";
            const name = DiscordInternals.ruleName(rule) ?? rule.label ?? `user ${rule.user} in channel ${rule.channel}`;
            const mode = (rule.mode ?? this.rules?.defaultMode) === "draft" ? "drafts first" : "replies sent";
            const when = { always: " · even while you're here", away: " · only while you're away" }[rule.reply_when] ?? "";
            const source = rule.source === "discord" ? "Discord " : "";
            row.appendChild(this.textElement("span", `${name} · persona: ${rule.persona ?? "default"} · ${mode}${when} · ${source}`));
            if (rule.source === "discord") {
                const button = document.createElement("button");
                button.type = "button";
                button.textContent = "Remove";
                button.addEventListener("click", () => this.requestRule({ type: "rule_remove", user: rule.user, channel: rule.channel }));
                row.appendChild(button);
            } else {
                row.appendChild(this.textElement("span", rule.where ?? "reply_config.py"));
            }
            list.appendChild(row);
        }
    }

    textElement(tag, text) {
        const element = document.createElement(tag);
        element.textContent = text;
        return element;
    }

    onChannelSelect(action) {
        try {
            this.renderIndicator(typeof action?.channelId === "string" ? action.channelId : undefined);
        } catch (error) {
            this.warnOnce("indicator", "could not show the auto-reply indicator", error);
        }
    }

    /** Show the pill while the selected chat is watched and the server connected; remove it otherwise. */
    renderIndicator(channelId = DiscordInternals.selectedChannelId()) {
        if (!this.running) return;
        const rules = this.rules?.rules ?? this.watch ?? [];
        const kind = channelId == null ? null : DiscordInternals.chatKind(channelId);
        const text = this.welcomed && channelId != null ? indicatorText(chatRules(rules, channelId, kind ?? {}), this.awayStatus) : null;
        if (text === null) {
            this.indicator?.remove();
            this.indicator = null;
            return;
        }
        if (!this.indicator) {
            const pill = document.createElement("div");
            pill.className = "discord-auto-reply-indicator";
            Object.assign(pill.style, {
                position: "fixed", right: "16px", bottom: "72px", zIndex: "1000", padding: "2px 10px", borderRadius: "999px",
                fontSize: "12px", background: "var(--brand-500, #5865f2)", color: "#fff", pointerEvents: "none",
            });
            document.body?.appendChild(pill);
            this.indicator = pill;
        }
        this.indicator.textContent = text;
    }

    awayNoteField() {
        const element = document.createElement("input");
        element.name = "away_note";
        element.type = "text";
        element.maxLength = AWAY_NOTE_MAX;
        element.addEventListener("change", () => this.setAwayNote(element.value));
        this.awayNoteInput = element;
        this.showAwayNote();
        return element;
    }

    /** The note set on the server in the field; a note from elsewhere (AWAY_NOTE, the custom
     * status) as its placeholder, since typing one replaces it. */
    showAwayNote() {
        const element = this.awayNoteInput;
        const status = this.awayStatus;
        if (!element || !status || typeof status.note !== "string") return;
        const own = status.note_source === AWAY_NOTE_SET;
        element.value = own ? status.note : "";
        element.placeholder = !own && status.note ? `${status.note} (${status.note_source})` : "e.g. at the gym, back at 18:00";
    }

    /** Set the away note on the server ("" clears it); `away_status` frames bring it back. */
    setAwayNote(text) {
        const note = String(text).trim().slice(0, AWAY_NOTE_MAX);
        if (!this.send({ type: "away", note })) this.toast("not connected to the auto-reply server: away note not changed", "error");
    }

    awaySwitch() {
        this.awaySelect = this.choice("away", AWAY_SWITCHES, String(this.awayStatus?.switch ?? "auto"), (value) => this.setAway(value));
        return this.awaySelect;
    }

    /** A `<select>` of `[value, label]` options calling `onChange(value)`. */
    choice(name, options, value, onChange) {
        const select = document.createElement("select");
        select.name = name;
        for (const [optionValue, label] of options) {
            const option = document.createElement("option");
            option.value = optionValue;
            option.textContent = label;
            select.appendChild(option);
        }
        select.value = value;
        select.addEventListener("change", () => onChange(select.value));
        return select;
    }

    /** The settings panel's switch: the server keeps it (so does `discord-auto-reply away`). */
    setAway(mode) {
        if (!this.send({ type: "away", mode })) this.toast("not connected to the auto-reply server: away mode not changed", "error");
    }

    showSummary(frame) {
        const React = BdApi.React;
        const link = (channel, guild) => React.createElement("a", {
            href: `https://discord.com${channelPath(channel, guild)}`,
            onClick: (event) => {
                event?.preventDefault?.();
                if (!DiscordInternals.openChat(channel, guild)) this.warnOnce("router", "Discord's router was not found; cannot open the chat");
            },
        }, "Open the chat");
        const content = [];
        for (const chat of Array.isArray(frame.chats) ? frame.chats : []) {
            const who = DiscordInternals.userName(chat.user) ?? `user ${chat.user}`;
            content.push(`${who} ${DiscordInternals.chatLabel(chat.channel)}: ${chat.answered} message(s) answered`);
            for (const line of chat.replies ?? []) content.push(`• ${line}`);
            content.push(link(chat.channel, null));
        }
        const drafts = Array.isArray(frame.drafts) ? frame.drafts : [];
        if (drafts.length) content.push(`${drafts.length} draft(s) still waiting:`);
        for (const draft of drafts) {
            const who = DiscordInternals.userName(draft.user) ?? (draft.author || `user ${draft.user}`);
            content.push(`• to ${who} ${DiscordInternals.chatLabel(draft.channel)}: ${draft.content}`);
            content.push(link(draft.channel, draft.guild));
        }
        BdApi.UI.showConfirmationModal("While you were away", content, { confirmText: "OK", cancelText: null });
    }

    /* ----- draft mode: Send, Edit or Discard inside Discord ----- */

    showDraft(frame) {
        const id = String(frame.id);
        if (this.draftNotices.has(id)) return; // shown already (a reconnect sends pending drafts again)
        const who = DiscordInternals.userName(frame.user) ?? (frame.author || `user ${frame.user}`);
        const where = DiscordInternals.chatLabel(frame.channel);
        const text = draftNoticeText(frame, who, where);
        const close = BdApi.UI.showNotice(text, {
            type: "info",
            buttons: [
                { label: "Send", onClick: () => this.draftAction(id, "send") },
                { label: "Edit", onClick: () => this.editDraft(frame, who, where) },
                { label: "Discard", onClick: () => this.draftAction(id, "discard") },
            ],
        });
        if (typeof close === "function") return void this.draftNotices.set(id, close);
        // No notice area on this screen: ask in a modal ("Not now" leaves it to `discord-auto-reply drafts`).
        BdApi.UI.showConfirmationModal(`Draft reply to ${who}`, [text], {
            confirmText: "Send",
            cancelText: "Not now",
            onConfirm: () => this.draftAction(id, "send"),
        });
        this.draftNotices.set(id, () => {});
    }

    editDraft(frame, who, where) {
        const React = BdApi.React;
        let text = String(frame.content);
        const editor = React.createElement("textarea", {
            defaultValue: text,
            rows: 6,
            style: { width: "100%", boxSizing: "border-box" },
            onChange: (event) => {
                text = String(event.target.value);
            },
        });
        BdApi.UI.showConfirmationModal(`Edit the reply to ${who}`, [`${where}, answering “${frame.question}”:`, editor], {
            confirmText: "Send",
            cancelText: "Cancel",
            onConfirm: () => {
                if (text.trim()) this.draftAction(String(frame.id), "send", text);
                else this.toast("the reply is empty: not sent", "error");
            },
        });
    }

    draftAction(id, action, content = null) {
        if (!this.send({ type: "draft_action", id, action, content })) {
            this.toast("not connected to the auto-reply server: try again in a moment", "error");
        }
    }

    onDraftDone(frame) {
        const id = String(frame.id);
        if (frame.status === "failed") return this.toast(`draft not sent: ${frame.error}`, "error");
        const close = this.draftNotices.get(id);
        if (!close) return undefined;
        this.draftNotices.delete(id);
        close();
        if (frame.status === "sent") return this.toast("reply sent", "success");
        if (frame.status === "expired") return this.toast("a draft expired unsent", "info");
        return undefined;
    }

    closeDraftNotices() {
        for (const close of this.draftNotices.values()) close(true);
        this.draftNotices.clear();
    }

    toast(text, type = "info") {
        BdApi.UI.showToast(`${PLUGIN_NAME}: ${text}`, { type });
    }

    /** Log a problem once per kind, so a recurring failure never floods the console. */
    warnOnce(kind, text, error) {
        if (this.warned.has(kind)) return;
        this.warned.add(kind);
        if (error === undefined) this.api.Logger.warn(text);
        else this.api.Logger.warn(text, error);
    }
};

// Pure parts, exposed for tests; BetterDiscord ignores static properties.
module.exports.internals = { DiscordInternals, messageFrame, customStatusText, isWatched, watchList, menuTargets, rulesState, autoReplyMenu, appendMenuItem, chatRules, indicatorText, backoffDelay, Outbox, sendMessageArgs, normalizeSettings, startupSettings, serverUrl, channelPath, ActivityReporter, draftNoticeText, transportOrder, describeEnd, HttpLink, DEFAULT_SETTINGS };
