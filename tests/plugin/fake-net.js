"use strict";
// BetterDiscord's `BdApi.Net.fetch` for the Node tests, and a switch that blocks loopback as
// Chromium's Local Network Access (LNA) does.
//
// Net.fetch follows BetterDiscord v1.13.6+ (commit 7cfdec51): the renderer half,
// src/betterdiscord/api/fetch.ts, and the preload half that makes the request with Node's
// http/https, src/electron/preload/api/fetch.ts. Each behaviour below names the half it comes from.
// The global `fetch` is never used: it has no inactivity timeout, and it is the page's network stack,
// which LNA guards; BetterDiscord's preload is outside it.

const http = require("node:http");
const https = require("node:https");

const DEFAULT_TIMEOUT = 3000; // api/fetch.ts: DEFAULT_TIMEOUT
const MAX_DEFAULT_REDIRECTS = 20; // api/fetch.ts: MAX_DEFAULT_REDIRECTS
const METHODS = new Set(["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD", "CONNECT", "TRACE"]); // api/fetch.ts
const REDIRECT_CODES = new Set([301, 302, 307, 308]); // preload: no 303
const BODYLESS_STATUS_CODES = new Set([101, 204, 205, 304]); // preload
// The renderer builds a `Request` with the page's own constructor, and in a browser that one drops
// the Fetch standard's forbidden request headers (https://fetch.spec.whatwg.org/#forbidden-request-header).
// Node's Request keeps them, so they are dropped here: an `Origin` never leaves Net.fetch.
const FORBIDDEN_HEADERS = new Set([
    "accept-charset", "accept-encoding", "access-control-request-headers", "access-control-request-method",
    "connection", "content-length", "cookie", "cookie2", "date", "dnt", "expect", "host", "keep-alive",
    "origin", "referer", "set-cookie", "te", "trailer", "transfer-encoding", "upgrade", "via",
]);
const isForbiddenHeader = (name) => FORBIDDEN_HEADERS.has(name) || name.startsWith("proxy-") || name.startsWith("sec-");

/** A Response whose url and redirected are the preload's, as api/fetch.ts's HydratingResponse. */
class NetResponse extends Response {
    #url;
    #redirected;

    constructor(body, init, url, redirected) {
        super(body, init);
        this.#url = url;
        this.#redirected = redirected;
    }

    get url() {
        return this.#url;
    }

    get redirected() {
        return this.#redirected;
    }
}

/**
 * `{ fetch, calls, inFlight }`: `fetch(input, init)` is BdApi.Net.fetch; every call is kept in
 * `calls` as {url, method, headers, body, timeout, status, outcome ("pending", "response",
 * "error"), error, responseText, ended, streamError, closed (its connection)} and `destroy(error)` (not enumerable) that
 * drops its connection; `inFlight` counts requests whose connection is still open (a held poll, a
 * streaming body). Hooks for the harness's frame recorder:
 * `onRequest(call)` before the request goes out; `onResponseText(call, text)` for each chunk of
 * the body as it arrives (decoded as UTF-8), `onResponseEnd(call)` when it ends; `rewrite(call)`,
 * asked when headers arrive, may return a function of text that replaces each line of the body (or
 * its remainder at the end) before the caller reads it.
 */
function createFakeNet({ onRequest, onResponseText, onResponseEnd, rewrite } = {}) {
    const calls = [];
    let inFlight = 0;

    async function fetch(input, init) {
        // api/fetch.ts: the page's Request normalises url, method, headers and body.
        const request = input instanceof Request ? input : new Request(input instanceof URL ? input.href : input, init);
        const headers = Object.fromEntries([...request.headers].filter(([name]) => !isForbiddenHeader(name)));
        const method = METHODS.has(request.method) ? request.method : "GET";
        // api/fetch.ts: `init?.timeout ?? DEFAULT_TIMEOUT`, so undefined and null are 3000; the
        // preload hands it to Node as is: 0 turns the timer off, Infinity overflows Node's timer
        // (TimeoutOverflowWarning, then 1 ms), which is why a finite value is wanted.
        const timeout = init?.timeout ?? DEFAULT_TIMEOUT;
        const maxRedirects = init?.maxRedirects ?? MAX_DEFAULT_REDIRECTS;
        // A string body is recorded at once, so the call (and its frames) is seen in the same tick
        // as the caller's Net.fetch, as a WebSocket send() is.
        const body = typeof init?.body === "string" && !(input instanceof Request) ? init.body : request.body ? await request.clone().text() : null;
        const call = { url: request.url, method, headers, body, timeout, status: null, outcome: "pending", error: null, responseText: "", ended: false, streamError: null, closed: false };
        calls.push(call);
        onRequest?.(call);
        try {
            const response = await nativeFetch(request, { headers, method, timeout, maxRedirects, call });
            call.outcome = "response";
            return response;
        } catch (error) {
            call.outcome = "error";
            call.error = error;
            throw error;
        }
    }

    // The preload's nativeFetch, with the request body streamed as it does (so chunked, with no
    // Content-Length) and the response body streamed chunk by chunk.
    function nativeFetch(request, { headers, method, timeout, maxRedirects, call }) {
        return new Promise((resolve, reject) => {
            let redirectCount = 0;
            const signal = request.signal;

            const out = (uri, res) => {
                const status = res.statusCode ?? 0;
                call.status = status;
                const lines = rewrite?.(call) ?? null;
                let pending = "";
                let stream = null;
                const decoder = new TextDecoder();
                if (!BODYLESS_STATUS_CODES.has(status)) {
                    stream = new ReadableStream({
                        type: "bytes",
                        start(controller) {
                            const push = (text) => text && controller.enqueue(new TextEncoder().encode(text));
                            res.on("data", (data) => {
                                const text = decoder.decode(data, { stream: true });
                                call.responseText += text;
                                onResponseText?.(call, text);
                                if (!lines) return controller.enqueue(new Uint8Array(data)); // a copy: Node may reuse the buffer
                                pending += text;
                                const cut = pending.lastIndexOf("\n") + 1;
                                if (cut) push(pending.slice(0, cut).split("\n").slice(0, -1).map((line) => lines(line) + "\n").join(""));
                                pending = pending.slice(cut);
                            });
                            res.on("error", (error) => {
                                call.streamError = error;
                                controller.error(error);
                            });
                            res.once("end", () => {
                                call.ended = true;
                                onResponseEnd?.(call);
                                if (lines && pending) push(lines(pending));
                                controller.close();
                            });
                        },
                    });
                }
                return new NetResponse(stream, { headers: res.headers, status, statusText: res.statusMessage || "" }, uri, redirectCount !== 0);
            };

            const execute = async (uri) => {
                const httpModule = uri.startsWith("http:") ? http : uri.startsWith("https:") ? https : null;
                if (!httpModule) return reject(new Error(`Unsupported protocol: ${uri.slice(0, uri.indexOf(":"))}:`));
                inFlight += 1;
                const req = httpModule.request(uri, { headers, method, timeout }, (res) => {
                    if (REDIRECT_CODES.has(res.statusCode)) {
                        if (request.redirect === "error") return req.destroy(new Error("Failed to fetch"));
                        if (request.redirect === "manual") return resolve(out(uri, res));
                        if (redirectCount >= maxRedirects) return reject(new Error(`Maximum amount of redirects reached (${maxRedirects})`));
                        if (res.headers.location) {
                            let next;
                            try {
                                next = new URL(res.headers.location); // absolute only, as BD
                            } catch (error) {
                                return reject(error);
                            }
                            for (const [key, value] of new URL(uri).searchParams) next.searchParams.set(key, value);
                            redirectCount += 1;
                            res.resume();
                            return execute(next.href);
                        }
                    }
                    resolve(out(uri, res));
                });
                // A test may drop the connection under the caller (the record is not enumerable).
                Object.defineProperty(call, "destroy", { value: (error) => req.destroy(error), configurable: true });
                req.once("close", () => {
                    inFlight -= 1;
                    call.closed = true;
                });
                req.shouldKeepAlive = request.keepalive; // false unless asked: "Connection: close"
                if (signal) {
                    const onAbort = () => req.destroy(signal.reason || new Error("Request was aborted"));
                    if (signal.aborted) onAbort();
                    else {
                        signal.addEventListener("abort", onAbort, { once: true });
                        req.once("close", () => signal.removeEventListener("abort", onAbort));
                    }
                }
                // Node's socket inactivity timeout: no byte either way for `timeout` ms, whether
                // before the response or while its body streams.
                req.once("timeout", () => req.destroy(new Error("Request timed out")));
                req.once("error", (error) => reject(error));
                if (request.body) {
                    try {
                        for await (const chunk of request.body) req.write(chunk);
                        req.end();
                    } catch (error) {
                        req.destroy(error);
                    }
                } else req.end();
            };

            execute(request.url);
        });
    }

    return {
        fetch,
        calls,
        get inFlight() {
            return inFlight;
        },
    };
}

/* ----- Local Network Access ----- */

/**
 * Whether a URL's host is loopback as Chromium's LNA sees it: 127.0.0.0/8, ::1 (also as an
 * IPv4-mapped address), and `localhost` or any name under it, which Chromium resolves to loopback
 * itself (net/base/url_util.cc IsLocalHostname).
 */
function isLoopbackUrl(url) {
    let host;
    try {
        host = new URL(String(url)).hostname.toLowerCase();
    } catch {
        return false;
    }
    if (host.startsWith("[")) host = host.slice(1, -1);
    if (host === "localhost" || host.endsWith(".localhost") || host === "::1") return true;
    if (/^::ffff:(127\.|7f[0-9a-f]{2}:)/.test(host)) return true;
    return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

const SOCKET_STATES = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 };

function closeEvent(code) {
    if (typeof CloseEvent === "function") return new CloseEvent("close", { code, reason: "", wasClean: false });
    return Object.assign(new Event("close"), { code, reason: "", wasClean: false }); // Node < 23 has no global CloseEvent
}

/**
 * A WebSocket LNA refused. As Chromium does (measured with Chromium 156 in
 * tests/browser/test_lna_fallback.py; obs-websocket#1340): the constructor returns a CONNECTING
 * socket and nothing is sent to the server; in a later task it turns CLOSED and fires `error`, then
 * `close` with code 1006, an empty reason and wasClean false. `close()` before that only makes it
 * CLOSING; `send()` while CONNECTING throws InvalidStateError (the WebSocket standard).
 */
class BlockedWebSocket extends EventTarget {
    constructor(url, protocols) {
        super();
        this.url = new URL(String(url)).href;
        this.protocol = "";
        this.extensions = "";
        this.binaryType = "blob";
        this.bufferedAmount = 0;
        this.readyState = SOCKET_STATES.CONNECTING;
        this.protocols = protocols;
        for (const type of ["open", "message", "error", "close"]) this[`on${type}`] = null;
        setTimeout(() => {
            this.readyState = SOCKET_STATES.CLOSED;
            this.#fire(new Event("error"));
            this.#fire(closeEvent(1006));
        }, 0);
    }

    #fire(event) {
        this.dispatchEvent(event);
        this[`on${event.type}`]?.call(this, event);
    }

    send() {
        if (this.readyState === SOCKET_STATES.CONNECTING) throw new DOMException("Still in CONNECTING state.", "InvalidStateError");
    }

    close() {
        if (this.readyState === SOCKET_STATES.CONNECTING) this.readyState = SOCKET_STATES.CLOSING;
    }
}
Object.assign(BlockedWebSocket, SOCKET_STATES);
Object.assign(BlockedWebSocket.prototype, SOCKET_STATES);

/**
 * The LNA switch: `WebSocket(Base, { onBlocked })` is a subclass of Base whose loopback sockets are
 * BlockedWebSockets (passed to `onBlocked`, e.g. to record them) and never reach the network;
 * other URLs are Base's own. `fetch(pageFetch)` rejects a loopback URL at once with
 * TypeError("Failed to fetch"), as Chromium's fetch does when LNA refuses it, and passes the rest on.
 * `blocked` lists the loopback URLs refused.
 */
function createLocalNetworkBlock() {
    const blocked = [];
    return {
        blocked,
        WebSocket(Base, { onBlocked } = {}) {
            return class LocalNetworkBlockedWebSocket extends Base {
                constructor(url, ...rest) {
                    if (isLoopbackUrl(url)) {
                        blocked.push(String(url));
                        const socket = new BlockedWebSocket(url, rest[0]);
                        onBlocked?.(socket);
                        return socket; // a derived constructor may return an object instead of `this`
                    }
                    super(url, ...rest);
                }
            };
        },
        fetch(pageFetch = globalThis.fetch) {
            return (input, init) => {
                const url = input instanceof Request ? input.url : String(input);
                if (isLoopbackUrl(url)) {
                    blocked.push(url);
                    return Promise.reject(new TypeError("Failed to fetch"));
                }
                return pageFetch(input, init);
            };
        },
    };
}

module.exports = { createFakeNet, createLocalNetworkBlock, isLoopbackUrl, BlockedWebSocket, DEFAULT_TIMEOUT };
