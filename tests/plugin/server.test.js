"use strict";
// The plugin against the real Python relay server (and the fake OpenAI API), over a real websocket.
// Each test uses its own channels so that replies still in flight never cross tests.

const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const { before, after, afterEach, describe, it } = require("node:test");

const { SELF } = require("./fake-bdapi");
const { TRANSPORT, setup, waitFor, freePort, startFakeOpenAI, RelayServer, echoedText } = require("./harness");

const RULES = [
    ["111", "222"], // one friend in one channel
    ["*", "333"], // anyone in a channel
    ["*", "334"],
    ["*", "335"],
    ["*", "336"],
    ["*", "337"],
    ["*", "339"],
    ["*", "340"],
    ["*", "341"],
    ["*", "342"],
];

let llm;
let server;
const running = [];

before(async () => {
    llm = await startFakeOpenAI({ delay: 0.3 }); // slow enough that the typing pulse comes first
    // No test reaches the real CDN: the attachments below name it, and are never downloaded.
    server = await new RelayServer({ port: await freePort(), llm, rules: RULES, config: { ATTACHMENT_HOSTS: ["127.0.0.1"] } }).start();
});

after(async () => {
    while (running.length) running.pop().stop();
    await server?.dispose();
    await llm?.stop();
});

afterEach(() => {
    while (running.length) running.pop().stop();
});

/** A started plugin connected (welcomed) to the shared server. */
async function connected(overrides = {}) {
    const context = setup({ settings: server.settings, ...overrides });
    context.plugin.start();
    running.push(context.plugin);
    await waitFor(() => context.plugin.status === "connected", { what: `a welcome; server log:\n${server.output}` });
    return context;
}

/**
 * Wait as long as several reconnect attempts take: until a plugin refused at the handshake (same
 * backoff) has tried three times. Shows that a retry that did not happen would have had its time,
 * however slow the machine.
 */
async function severalBackoffPeriods() {
    const control = setup({ settings: { ...server.settings, transport: "websocket" }, origin: "https://evil.example" });
    control.plugin.start();
    try {
        await waitFor(() => control.spy.sockets.length >= 3, { what: "a refused plugin's retries" });
    } finally {
        control.plugin.stop();
    }
}

/** The HTTP status of a websocket upgrade request to the server with this Origin. */
function upgradeStatus(origin) {
    return new Promise((resolve, reject) => {
        const request = http.get({
            host: "127.0.0.1",
            port: server.port,
            headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", Origin: origin },
        });
        request.on("upgrade", (response, socket) => {
            socket.destroy();
            resolve(response.statusCode);
        });
        request.on("response", (response) => {
            response.resume();
            resolve(response.statusCode);
        });
        request.on("error", reject);
    });
}

const repliesIn = (discord, channel) => discord.sent.filter((call) => call.channelId === channel).map((call) => call.message.content);
const turnsIn = (reply) => Number(/\[turns=(\d+)\]$/.exec(reply)?.[1]);
const acked = (spy, id) => spy.received.some((frame) => frame.type === "ack" && frame.id === id);

describe("plugin <-> relay server", () => {
    it("says hello with the secret and the owner's id, and gets the watch list", async () => {
        const { spy, fake, plugin } = await connected();
        const hello = spy.sent[0];
        assert.deepEqual(
            { ...hello, socket: undefined },
            { socket: undefined, type: "hello", secret: server.secret, client: "DiscordAutoReply", version: "0.1.0", self_id: SELF.id },
        );
        const welcome = spy.received.find((frame) => frame.type === "welcome");
        assert.deepEqual(welcome.watch, RULES.map(([user, channel]) => ({ user, channel })));
        assert.equal(welcome.messenger, "plugin");
        assert.deepEqual(plugin.watch, welcome.watch);
        assert.deepEqual(fake.data.get("DiscordAutoReply", "watch"), welcome.watch); // remembered for the next start
        assert.deepEqual(fake.toasts.map((toast) => toast.type), ["success"]);
        assert.match(fake.toasts[0].content, /connected/);
    });

    it("forwards only watched pairs, marks own messages self, ignores optimistic echoes", async () => {
        const { discord, spy, plugin } = await connected();
        const friend = discord.receive({ channel_id: "222", author: { id: "111", username: "friend" }, content: "exact pair" });
        const anyone = discord.receive({ channel_id: "333", author: { id: "777", username: "someone" }, content: "wildcard user", guild_id: "900" });
        const unwatchedChannel = discord.receive({ channel_id: "444", author: { id: "111", username: "friend" }, content: "SECRET-A" });
        const unwatchedUser = discord.receive({ channel_id: "222", author: { id: "555", username: "stranger" }, content: "SECRET-B" });
        const mine = discord.receive({ channel_id: "222", author: { ...SELF }, content: "I wrote this myself" });
        const mineElsewhere = discord.receive({ channel_id: "444", author: { ...SELF }, content: "SECRET-C" });
        discord.dispatcher.dispatch({ type: "MESSAGE_CREATE", channelId: "333", optimistic: true, message: { id: "42", channel_id: "333", author: { id: "778" }, content: "SECRET-D", type: 0 } });
        discord.receive({ channel_id: "333", webhook_id: "1", author: { id: "779" }, content: "SECRET-E" });
        discord.receive({ channel_id: "333", type: 7, author: { id: "780" }, content: "SECRET-F" });
        discord.receive({ channel_id: "333", flags: 64, author: { id: "781" }, content: "SECRET-G" });

        const forwarded = () => spy.messages().filter((frame) => !frame.content.startsWith("[auto-reply]"));
        // Over HTTP, frames queued behind a post in flight go out with the next one.
        await waitFor(() => forwarded().length >= 3, { what: "the three forwarded messages" });
        assert.deepEqual(forwarded().map((frame) => frame.id), [friend.id, anyone.id, mine.id]);
        assert.deepEqual(forwarded().map((frame) => frame.self), [false, false, true]);
        assert.equal(forwarded()[1].guild, "900");
        assert.ok(spy.sent.every((frame) => !/SECRET/.test(JSON.stringify(frame))), "nothing unwatched left the client");
        for (const skipped of [unwatchedChannel, unwatchedUser, mineElsewhere]) assert.ok(!spy.sent.some((frame) => frame.id === skipped.id));

        // The server acknowledges each, so the buffer empties; replies come for the two others.
        await waitFor(() => [friend, anyone, mine].every((m) => spy.received.some((frame) => frame.type === "ack" && frame.id === m.id)), { what: "acks" });
        await waitFor(() => repliesIn(discord, "222").length === 1 && repliesIn(discord, "333").length === 1, { what: "two replies" });
        assert.equal(echoedText(repliesIn(discord, "222")[0]), "exact pair");
        assert.equal(echoedText(repliesIn(discord, "333")[0]), "wildcard user");
        await waitFor(() => plugin.outbox.size === 0, { what: "the buffer to empty (echoes of the replies acked too)" });

        // Own messages never reach a pair's queue; the server says when it knows an echo for one.
        const ownEchoes = () => spy.messages().filter((frame) => frame.self && frame.content.startsWith("[auto-reply]"));
        await waitFor(() => ownEchoes().length === 2, { what: "the echoes of both replies" });
        const echoes = ownEchoes();
        assert.deepEqual(echoes.map((frame) => frame.channel).sort(), ["222", "333"]);
        for (const echo of echoes) {
            await waitFor(() => server.output.includes(`message ${echo.id} is the echo of our own reply`), { what: `the server to know echo ${echo.id}` });
        }
        // Every frame above was acknowledged, so accepted (a reply to it queued), before these two;
        // a pair's replies go out in order, so a second reply to either pair would come first.
        discord.receive({ channel_id: "222", author: { id: "111", username: "friend" }, content: "later, friend" });
        discord.receive({ channel_id: "333", author: { id: "777", username: "someone" }, content: "later, someone" });
        await waitFor(() => repliesIn(discord, "222").length >= 2 && repliesIn(discord, "333").length >= 2, { what: "the later replies" });
        assert.deepEqual(repliesIn(discord, "222").map(echoedText), ["exact pair", "later, friend"]);
        assert.deepEqual(repliesIn(discord, "333").map(echoedText), ["wildcard user", "later, someone"]);
        assert.equal(discord.sent.length, 4, "no reply to unwatched, own or skipped messages");
        assert.ok(spy.sent.every((frame) => !/SECRET/.test(JSON.stringify(frame))), "nothing unwatched ever left the client");
        // The server has the plugin's `sent` for each, so no send is left for the next test's plugin.
        const replied = (channel) => (server.output.match(new RegExp(`replied to user \\d+ in channel ${channel} `, "g")) ?? []).length;
        await waitFor(() => replied("222") === 2 && replied("333") === 2, { what: "the server to hear `sent` for every reply" });
    });

    it("posts the server's reply through Discord's sendMessage and answers `sent`", async () => {
        const { discord, spy } = await connected();
        const question = discord.receive({ channel_id: "334", guild_id: "900", author: { id: "700", username: "asker" }, content: "what time is it?" });
        await waitFor(() => discord.sent.length === 1, { what: "sendMessage" });
        const send = spy.received.find((frame) => frame.type === "send");
        assert.equal(send.channel, "334");
        assert.equal(send.reply_to, question.id);
        const call = discord.sent[0];
        assert.equal(call.channelId, "334");
        assert.equal(call.message.content, "[auto-reply] echo: what time is it? [turns=1]");
        assert.deepEqual({ ...call.message, content: undefined }, { content: undefined, tts: false, invalidEmojis: [], validNonShortcutEmojis: [] });
        assert.deepEqual(JSON.parse(JSON.stringify(call.options.allowedMentions)), { parse: [], replied_user: false });
        assert.deepEqual(JSON.parse(JSON.stringify(call.options.messageReference)), { channel_id: "334", message_id: question.id, guild_id: "900" });
        const sent = await waitFor(() => spy.sent.find((frame) => frame.type === "sent"), { what: "a sent frame" });
        assert.deepEqual({ ...sent, socket: 0 }, { socket: 0, type: "sent", nonce: send.nonce, ok: true, error: null });
        // Discord echoes our reply as the owner's message: forwarded as self, carrying the nonce.
        const echo = await waitFor(() => spy.messages().find((frame) => frame.self && frame.channel === "334"), { what: "the echo" });
        assert.equal(echo.nonce, send.nonce);
    });

    for (const keepNonce of [true, false]) {
        const how = keepNonce ? "by the nonce it carries" : "by channel and text when the client drops the nonce";
        it(`recognises the echo of its reply ${how}: not answered, not remembered twice`, async () => {
            const channel = keepNonce ? "340" : "341";
            const { discord, spy } = await connected({ keepNonce });
            discord.receive({ channel_id: channel, author: { id: "705", username: "x" }, content: "first question" });
            const send = await waitFor(() => spy.received.find((frame) => frame.type === "send" && frame.channel === channel), { what: "the send" });
            const echo = await waitFor(() => spy.messages().find((frame) => frame.self && frame.channel === channel), { what: "the echo" });
            assert.equal(echo.content, send.content);
            if (keepNonce) assert.equal(echo.nonce, send.nonce);
            else assert.notEqual(echo.nonce, send.nonce);
            await waitFor(() => acked(spy, echo.id), { what: "the echo's ack" });

            // The pair's messages are handled in order: a reply to the echo, or the echo remembered
            // as something the owner typed, would show before or in the answer to the next question.
            discord.receive({ channel_id: channel, author: { id: "705", username: "x" }, content: "second question" });
            await waitFor(() => repliesIn(discord, channel).length >= 2, { what: "the second reply" });
            const [first, second] = repliesIn(discord, channel);
            assert.equal(echoedText(first), "first question");
            assert.equal(echoedText(second), "second question");
            assert.equal(turnsIn(second), 3, "question, reply, question: the echo is not a turn of its own");
            assert.equal(repliesIn(discord, channel).length, 2);
        });
    }

    it("answers a send repeated after a reconnect without posting it twice", async () => {
        const { discord, spy, plugin } = await connected();
        discord.sendDelayMs = 500; // the post is still in flight when the connection drops
        discord.receive({ channel_id: "339", author: { id: "706", username: "x" }, content: "only once" });
        const send = await waitFor(() => spy.received.find((frame) => frame.type === "send" && frame.channel === "339"), { what: "the send" });
        spy.sockets[send.socket].close();
        await waitFor(() => spy.received.some((frame) => frame.type === "send" && frame.nonce === send.nonce && frame.socket > send.socket), {
            what: `the server to send it again after the reconnect; server log:\n${server.output}`,
        });
        // The repeat waits for the post still in flight and answers with its outcome.
        const answer = await waitFor(() => spy.sent.find((frame) => frame.type === "sent" && frame.nonce === send.nonce && frame.socket > send.socket), {
            what: "the repeat answered",
        });
        assert.equal(answer.ok, true);
        assert.deepEqual(repliesIn(discord, "339"), [send.content], "posted once");
        assert.equal(plugin.status, "connected");
        discord.sendDelayMs = 0;
    });

    it("shows the typing indicator through Discord's typing module", async () => {
        const { discord, spy } = await connected();
        discord.receive({ channel_id: "335", author: { id: "701", username: "x" }, content: "are you there?" });
        await waitFor(() => discord.typing.includes("335"), { what: "startTyping('335')" });
        assert.ok(spy.received.some((frame) => frame.type === "typing" && frame.channel === "335"));
        await waitFor(() => discord.sent.length === 1, { what: "the reply" });
    });

    it("answers sent ok:false when Discord refuses the message", async () => {
        const { discord, spy } = await connected();
        discord.failNextSend = new Error("Missing Permissions");
        discord.receive({ channel_id: "336", author: { id: "702", username: "x" }, content: "hi" });
        const sent = await waitFor(() => spy.sent.find((frame) => frame.type === "sent"), { what: "a sent frame" });
        assert.equal(sent.ok, false);
        assert.match(sent.error, /Missing Permissions/);
        await waitFor(() => /could not send: sendMessage failed: Missing Permissions/.test(server.output), { what: "the server to log the failure" });
    });

    it("still forwards when the message-sending module is missing, and answers sent ok:false", async () => {
        const { discord, spy, fake } = await connected({ missing: ["messageActions"] });
        assert.ok(fake.toasts.some((toast) => /message-sending module was not found; in-client sending is off/.test(toast.content)));
        const message = discord.receive({ channel_id: "337", author: { id: "703", username: "x" }, content: "hello?" });
        await waitFor(() => spy.received.some((frame) => frame.type === "ack" && frame.id === message.id), { what: "the ack" });
        const sent = await waitFor(() => spy.sent.find((frame) => frame.type === "sent"), { what: "a sent frame" });
        assert.equal(sent.ok, false);
        assert.match(sent.error, /message-sending module was not found/);
    });

    it("follows watch-list updates when reply_config.py changes", async () => {
        const { discord, spy, plugin } = await connected();
        const before = discord.receive({ channel_id: "338", author: { id: "704", username: "x" }, content: "not yet" });
        assert.ok(!spy.messages().some((frame) => frame.id === before.id));
        server.writeRules([...RULES, ["*", "338"]]);
        await waitFor(() => spy.received.some((frame) => frame.type === "watch"), { what: "a watch frame", timeout: 10000 });
        assert.equal(plugin.watch.length, RULES.length + 1);
        const after = discord.receive({ channel_id: "338", author: { id: "704", username: "x" }, content: "now watched" });
        await waitFor(() => spy.messages().some((frame) => frame.id === after.id), { what: "the newly watched message forwarded" });
        await waitFor(() => discord.sent.some((call) => call.channelId === "338"), { what: "the reply" });
        server.writeRules(RULES);
        await waitFor(() => plugin.watch.length === RULES.length, { what: "the old rules back", timeout: 10000 });
    });

    it("a wrong secret closes with 4001: toast, status 'bad secret', no more retries", async () => {
        const context = setup({ settings: { ...server.settings, secret: "wrong" } });
        context.plugin.start();
        running.push(context.plugin);
        await waitFor(() => context.plugin.status === "bad secret", { what: "status bad secret" });
        const opens = () => context.net.calls.filter((call) => call.url.includes("/plugin/open"));
        if (TRANSPORT === "websocket") assert.equal(context.spy.sockets[0].closeEvent.code, 4001);
        else assert.deepEqual(opens().map((call) => call.status), [401]); // the HTTP transport's refusal
        assert.equal(context.fake.toasts.length, 1);
        assert.equal(context.fake.toasts[0].type, "error");
        assert.match(context.fake.toasts[0].content, /refused the secret/);
        await severalBackoffPeriods();
        assert.equal(context.spy.sockets.length, 1, "no retry after a bad secret");
        assert.equal(opens().length, TRANSPORT === "websocket" ? 0 : 1, "no retry after a bad secret");
        const panel = context.plugin.getSettingsPanel();
        assert.match(panel.find((element) => element.className === "discord-auto-reply-status").textContent, /bad secret/);

        // Fixing the secret in the settings connects again.
        const secret = panel.find((element) => element.name === "secret");
        secret.value = server.secret;
        secret.dispatchEvent({ type: "change" });
        await waitFor(() => context.plugin.status === "connected", { what: "a welcome with the right secret" });
    });

    it("a page on another origin is refused at the handshake; the plugin just keeps retrying", async () => {
        // The WebSocket's Origin check (over HTTP, Net.fetch sends no Origin: tests/test_http_transport.py).
        const context = setup({ settings: { ...server.settings, transport: "websocket" }, origin: "https://evil.example" });
        context.plugin.start();
        running.push(context.plugin);
        await waitFor(() => context.spy.sockets.length >= 3, { what: "refused attempts" });
        assert.equal(context.plugin.status, "reconnecting");
        assert.ok(!context.spy.received.length, "no frame from the server");
        assert.deepEqual(context.fake.toasts.map((toast) => toast.type), ["warning"]); // "not reachable", once
        assert.equal(await upgradeStatus("https://evil.example"), 403);
        assert.equal(await upgradeStatus("https://discord.com"), 101);
    });

    it("forwards what a message carries beyond text; a photo alone, a voice note and a reply are answered", async () => {
        const { discord, spy } = await connected();
        const author = { id: "706", username: "sam", global_name: "Sam" };
        const cdn = "https://cdn.discordapp.com/attachments/342";
        const photo = discord.receive({
            channel_id: "342",
            author,
            content: "",
            attachments: [{ id: "1", filename: "beach.jpg", content_type: "image/jpeg", size: 2048, url: `${cdn}/1/beach.jpg?ex=1&is=2&hm=3`, width: 640, height: 480 }],
        });
        await waitFor(() => repliesIn(discord, "342").length === 1, { what: "the answer to a photo without text" });
        assert.equal(echoedText(repliesIn(discord, "342")[0]), "[photo: beach.jpg]");
        assert.equal(spy.messages().find((frame) => frame.id === photo.id).author.display_name, "Sam");

        discord.receive({
            channel_id: "342",
            author,
            content: "",
            flags: 1 << 13,
            attachments: [{ id: "2", filename: "voice-message.ogg", content_type: "audio/ogg", size: 9000, url: `${cdn}/2/voice-message.ogg`, duration_secs: 72.2, waveform: "AA" }],
        });
        await waitFor(() => repliesIn(discord, "342").length === 2, { what: "the answer to a voice note" });
        assert.equal(echoedText(repliesIn(discord, "342")[1]), "[voice message, 1:12]");

        discord.receive({
            channel_id: "342",
            type: 19,
            author,
            content: "what do you think?",
            sticker_items: [{ id: "9", name: "Wave" }],
            message_reference: { message_id: "5", channel_id: "342" },
            referenced_message: { id: "5", channel_id: "342", author: { id: "707", username: "ann", global_name: "Ann" }, content: "new haircut", attachments: [] },
        });
        await waitFor(() => repliesIn(discord, "342").length === 3, { what: "the answer to a reply" });
        assert.equal(echoedText(repliesIn(discord, "342")[2]), '(replying to Ann: "new haircut")\nwhat do you think?\n[sticker: Wave]');
    });

    it("connects without an Origin header too (not a browser page)", async () => {
        await connected({ origin: null });
    });

    it("stop() unsubscribes and closes the connection", async () => {
        const context = await connected();
        const { discord, spy, plugin } = context;
        assert.equal(discord.dispatcher.listenerCount("MESSAGE_CREATE"), 1);
        const disconnects = (server.output.match(/disconnected/g) ?? []).length;
        const connections = spy.sockets.length;
        const link = spy.sockets.at(-1);
        plugin.stop();
        assert.equal(discord.dispatcher.listenerCount("MESSAGE_CREATE"), 0);
        await waitFor(() => link.readyState === 3, { what: "the connection to close" });
        if (TRANSPORT === "websocket") assert.equal(link.closeEvent.code, 1000);
        else assert.ok(context.net.calls.some((call) => call.method === "POST" && call.url.includes("/plugin/close")), "the session closed");
        await waitFor(() => (server.output.match(/disconnected/g) ?? []).length > disconnects, { what: "the server to see the disconnect" });
        discord.receive({ channel_id: "222", author: { id: "111" }, content: "after stop" });
        await severalBackoffPeriods();
        assert.equal(spy.messages().length, 0);
        assert.equal(spy.sockets.length, connections);
    });
});

// Keep the server's log around when something fails, for the report.
process.on("exit", (code) => {
    if (code !== 0 && server) fs.writeSync(2, `\n--- relay server log ---\n${server.output}\n`);
});
