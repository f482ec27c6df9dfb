"use strict";
// The page the Chromium tests open as https://discord.com/app, after tests/plugin/fake-bdapi.js:
// the fake Discord client and BdApi on `window`, and the real plugin file evaluated as
// BetterDiscord does (a CommonJS `module`, `BdApi` a global, the page's own WebSocket).

/** Every WebSocket the page opens, with what it sent, received and went through. */
const sockets = [];
globalThis.WebSocket = class RecordedWebSocket extends globalThis.WebSocket {
    constructor(...args) {
        super(...args);
        this.events = [];
        this.sent = [];
        this.received = [];
        sockets.push(this);
        this.addEventListener("open", () => this.events.push("open"));
        this.addEventListener("error", () => this.events.push("error"));
        this.addEventListener("close", (event) => this.events.push(`close ${event.code}`));
        this.addEventListener("message", (event) => this.received.push(JSON.parse(event.data)));
    }

    send(data) {
        this.sent.push(JSON.parse(data));
        super.send(data);
    }
};

/** Load the plugin with these settings and start it; the test reads `window.relayTest`. */
globalThis.startPlugin = async ({ settings, backoff }) => {
    const source = await (await fetch("/discord-auto-reply.plugin.js")).text();
    const discord = FakeBdApi.createFakeDiscord();
    const fake = FakeBdApi.createFakeBdApi(discord, { document });
    fake.data.set("DiscordAutoReply", "settings", settings);
    globalThis.BdApi = fake.BdApi;
    const module = { exports: {} };
    const evaluate = new Function("module", "exports", "require", `${source}\n//# sourceURL=discord-auto-reply.plugin.js`);
    evaluate(module, module.exports, undefined);
    const Plugin = module.exports;
    const plugin = new Plugin({ name: "DiscordAutoReply", version: "0.1.0", author: "test", description: "test" }, { backoff });
    plugin.start();
    globalThis.relayTest = {
        discord,
        fake,
        plugin,
        sockets,
        /** The plugin's message frames, as sent on every socket, with the socket's index. */
        forwarded: () => sockets.flatMap((socket, index) => socket.sent.filter((frame) => frame.type === "message").map((frame) => ({ ...frame, socket: index }))),
        /** The replies posted through Discord's sendMessage. */
        replies: () => discord.sent.map((call) => ({ channel: call.channelId, content: call.message.content })),
    };
};
