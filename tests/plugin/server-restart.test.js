"use strict";
// The plugin's buffer against the real relay server going away and coming back: nothing watched is
// lost, nothing is answered twice, nothing unwatched ever leaves the client.

const assert = require("node:assert/strict");
const fs = require("node:fs");
const { before, after, describe, it } = require("node:test");

const { SELF } = require("./fake-bdapi");
const { setup, waitFor, freePort, startFakeOpenAI, RelayServer, echoedText } = require("./harness");

const RULES = [
    ["111", "222"],
    ["*", "333"],
    ["*", "334"],
];

let llm;
let server;
let context;

before(async () => {
    llm = await startFakeOpenAI();
    server = new RelayServer({ port: await freePort(), llm, rules: RULES });
    context = setup({ settings: server.settings });
});

after(async () => {
    context?.plugin.stop();
    await server?.dispose();
    await llm?.stop();
});

const replies = () => context.discord.sent.map((call) => echoedText(call.message.content));
const acked = (id) => context.spy.received.some((frame) => frame.type === "ack" && frame.id === id);
const framesOn = (socket) => context.spy.messages().filter((frame) => frame.socket === socket && !frame.self);

/**
 * Send one more message in each of `pairs` ([user, channel]) and wait for all their replies: a
 * second reply to an earlier message in one of these pairs would have come first, so what
 * `replies()` lacks then will not come. The server answers a pair's messages in turn, and takes
 * those waiting right after it logs a reply as sent: once this server run has logged the pair's
 * earlier reply, a message accepted twice gets a reply of its own, never merged into the new one's.
 */
async function followUp(pairs, label) {
    for (const [user, channel] of pairs) await server.child.waitForLine(`replied to user ${user} in channel ${channel} `, { what: `the server to log its reply in ${channel}` });
    const contents = pairs.map(([user, channel]) => {
        const content = `${label} in ${channel}`;
        context.discord.receive({ channel_id: channel, author: { id: user, username: `u${user}` }, content });
        return content;
    });
    await waitFor(() => contents.every((content) => replies().includes(content)), { what: `the replies to ${contents.join(", ")}` });
    return contents;
}

// The steps share one plugin and one server, in order.
describe("server down, restarted, and lost acks", () => {
    it("buffers messages from before the first connection and sends only the watched ones", async () => {
        const { discord, plugin, spy, fake } = context;
        plugin.start();
        const early = discord.receive({ channel_id: "222", author: { id: "111", username: "friend" }, content: "early bird" });
        discord.receive({ channel_id: "444", author: { id: "111", username: "friend" }, content: "SECRET unwatched early" });
        discord.receive({ channel_id: "444", author: { ...SELF }, content: "SECRET own unwatched early" });
        await waitFor(() => spy.sockets.length >= 2, { what: "a failed attempt and a retry" });
        assert.equal(plugin.status, "reconnecting");
        assert.equal(fake.toasts.filter((toast) => /not reachable/.test(toast.content)).length, 1);

        await server.start();
        await waitFor(() => plugin.status === "connected", { what: "the first welcome" });
        await waitFor(() => acked(early.id), { what: "the ack of the early message" });
        assert.deepEqual(spy.messages().map((frame) => frame.id), [early.id]);
        assert.ok(!JSON.stringify(spy.sent).includes("SECRET"), "unwatched messages never left the client");
        await waitFor(() => replies().length === 1, { what: "the reply" });
        assert.deepEqual(replies(), ["early bird"]);
        // Settle before the restart: `sent` answered, and Discord's echo of the reply forwarded and acked.
        const echo = await waitFor(() => spy.messages().find((frame) => frame.self), { what: "the echo of the reply" });
        await waitFor(() => spy.sent.some((frame) => frame.type === "sent") && acked(echo.id), { what: "sent + the echo's ack" });
    });

    it("keeps what arrives while the server restarts, then delivers each exactly once, in order", async () => {
        const { discord, plugin, spy, fake } = context;
        assert.equal(plugin.outbox.size, 0);
        const socketsBefore = spy.sockets.length;
        await server.stop();
        await waitFor(() => plugin.status === "reconnecting", { what: "the loss to be noticed" });
        assert.equal(fake.toasts.filter((toast) => /lost the connection/.test(toast.content)).length, 1);

        const whileDown = [
            discord.receive({ channel_id: "333", author: { id: "801", username: "a" }, content: "first while down" }),
            discord.receive({ channel_id: "444", author: { id: "802", username: "b" }, content: "SECRET unwatched while down" }),
            discord.receive({ channel_id: "334", author: { id: "803", username: "c" }, content: "second while down" }),
            discord.receive({ channel_id: "222", author: { id: "111", username: "friend" }, content: "third while down" }),
        ];
        await waitFor(() => spy.sockets.length >= socketsBefore + 2, { what: "reconnect attempts" });
        assert.equal(plugin.outbox.size, 3);

        await server.start();
        await waitFor(() => plugin.status === "connected", { what: "the welcome after the restart" });
        const socket = spy.sockets.length - 1;
        const watched = whileDown.filter((message) => !message.content.startsWith("SECRET"));
        await waitFor(() => watched.every((message) => acked(message.id)), { what: "acks for the buffered messages" });
        assert.deepEqual(framesOn(socket).map((frame) => frame.id), watched.map((message) => message.id), "re-sent in order, original ids, nothing else");
        await waitFor(() => replies().length === 4, { what: "three more replies" });
        const later = await followUp([["111", "222"], ["801", "333"], ["803", "334"]], "after the restart");
        assert.deepEqual(replies().sort(), ["early bird", "first while down", "second while down", "third while down", ...later].sort());
        assert.ok(!JSON.stringify(spy.sent).includes("SECRET"));
        assert.equal(fake.toasts.filter((toast) => /connected to the auto-reply server/.test(toast.content)).length, 2);
        const stateLogs = fake.logs.filter((log) => log.level === "info").map((log) => log.text.split(" (")[0]);
        assert.deepEqual(stateLogs, ["connecting", "reconnecting", "connected", "reconnecting", "connected"], "one log line per state change");
    });

    it("re-sends a message whose ack was lost; the server answers it once", async () => {
        const { discord, plugin, spy } = context;
        const repliesBefore = replies().length;
        let lost = null;
        spy.dropIncoming = (frame) => frame.type === "ack" && frame.id === lost;
        const message = discord.receive({ channel_id: "333", author: { id: "804", username: "d" }, content: "ack gets lost" });
        lost = message.id;
        await waitFor(() => spy.received.some((frame) => frame.type === "ack" && frame.id === message.id), { what: "the (dropped) ack" });
        await waitFor(() => replies().length === repliesBefore + 1, { what: "the reply" });
        const buffered = () => plugin.outbox.pending().some((frame) => frame.id === message.id);
        assert.ok(buffered(), "still waiting for its ack");

        spy.dropIncoming = null;
        const socketsBefore = spy.sockets.length;
        spy.sockets.at(-1).close(); // the connection drops
        await waitFor(() => spy.sockets.length > socketsBefore && plugin.status === "connected", { what: "a reconnect" });
        await waitFor(() => !buffered(), { what: "the re-sent message to be acked" });
        const copies = spy.messages().filter((frame) => frame.id === message.id);
        assert.equal(copies.length, 2);
        assert.notEqual(copies[0].socket, copies[1].socket);
        await followUp([["804", "333"]], "after the re-send");
        assert.equal(replies().filter((text) => text === "ack gets lost").length, 1, "the server dropped the duplicate id");
    });
});

process.on("exit", (code) => {
    if (code !== 0 && server) fs.writeSync(2, `\n--- relay server log ---\n${server.output}\n`);
});
