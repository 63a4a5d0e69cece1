'use strict';
// node-ws: WebSocket echo on the `ws` package over Node's `http` (or `https`) server, the JavaScript
// counterpart of the `tungstenite` server. The library answers pings, echoes close codes,
// reassembles fragments and closes with 1007 (invalid UTF-8), 1009 (too big) or 1002 itself.
// One process, one event loop.

const { WebSocketServer } = require('ws');
const { fail, positiveInt, serverArgs, createServer, listen, onShutdown } = require('./common');

const USAGE = `Usage: node ws-server.js [--addr HOST:PORT] [--max-message BYTES] [--cert FILE --key FILE]

WebSocket echo server (ws) on /ws and /: text is echoed as text, binary as binary. On
/broadcast every message goes to every client connected there, the sender included, in the
order received; a client with --broadcast-queue messages still unwritten gets the policy.
Prints "listening ws://HOST:PORT/ws" (wss:// with --cert) on stdout when ready; SIGTERM/SIGINT
send close 1001 to every peer and stop it (exit 0).

  --addr HOST:PORT       where to listen; port 0 picks a free one  [127.0.0.1:0]
  --max-message BYTES    largest message; close 1009 beyond         [16777216]
  --broadcast-policy P   a /broadcast client with a full queue: drop (the message, counted)
                         or disconnect (close 1008)                 [disconnect]
  --broadcast-queue N    messages a /broadcast client may have unwritten  [1024]
`;

const options = serverArgs(USAGE, {
  'broadcast-policy': { type: 'string', default: 'disconnect' },
  'broadcast-queue': { type: 'string', default: '1024' },
});
const policy = options.values['broadcast-policy'];
if (policy !== 'drop' && policy !== 'disconnect')
  fail(`unknown broadcast policy ${JSON.stringify(policy)}; expected drop or disconnect`, 2);
const queueBound = positiveInt('--broadcast-queue', options.values['broadcast-queue']);

const server = createServer(options, (req, res) => {
  const body = 'this is a WebSocket echo server: connect to /ws with a WebSocket client\n';
  res.writeHead(426, {
    'Content-Type': 'text/plain; charset=utf-8',
    Upgrade: 'websocket',
    'Content-Length': body.length,
  });
  res.end(body);
});

// Compression off, as in the reference servers (and the ws default for servers); the message
// limit matches theirs.
const wss = new WebSocketServer({
  noServer: true,
  maxPayload: options.maxMessage,
  perMessageDeflate: false,
});

/** The /broadcast subscribers, each with its count of messages not yet written. */
const subscribers = new Map();

/**
 * Sends `data` to every subscriber in the order messages arrived (ws writes in call order).
 * `ws` has no queue of its own to bound, so the queue is the count of sends whose write
 * callback has not fired yet; a subscriber at the bound gets the policy.
 */
function publish(data, isBinary) {
  for (const [ws, state] of subscribers) {
    if (state.pending >= queueBound) {
      if (policy === 'drop') {
        state.dropped += 1;
        continue;
      }
      subscribers.delete(ws);
      ws.close(1008, 'subscriber too slow: its broadcast queue was full');
      continue;
    }
    state.pending += 1;
    ws.send(data, { binary: isBinary }, () => {
      state.pending -= 1;
    });
  }
}

server.on('upgrade', (req, socket, head) => {
  const path = req.url.split('?', 1)[0];
  if (path === '/broadcast') {
    wss.handleUpgrade(req, socket, head, (ws) => {
      subscribers.set(ws, { pending: 0, dropped: 0 });
      ws.on('message', publish);
      ws.on('close', () => subscribers.delete(ws));
      ws.on('error', () => {});
    });
    return;
  }
  if (path !== '/ws' && path !== '/') {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    // The message arrives as one Buffer however it was fragmented; sending it with the same
    // opcode echoes text as text without decoding it.
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    // ws has already sent the right close code; without a listener the error would crash us.
    ws.on('error', () => {});
  });
});

listen(server, options, options.tls ? 'wss' : 'ws', '/ws');

onShutdown(() => {
  server.close();
  const finish = () => process.exit(0);
  if (wss.clients.size === 0) finish();
  for (const ws of wss.clients) {
    ws.on('close', () => {
      if (wss.clients.size === 0) finish();
    });
    ws.close(1001, 'server shutting down');
  }
  // Peers get 1 s to answer the close, as in the reference servers.
  setTimeout(() => {
    for (const ws of wss.clients) ws.terminate();
    finish();
  }, 1000).unref();
});
