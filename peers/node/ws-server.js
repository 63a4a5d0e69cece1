'use strict';
// node-ws: WebSocket echo on the `ws` package over Node's `http` server, the JavaScript
// counterpart of the `tungstenite` server. The library answers pings, echoes close codes,
// reassembles fragments and closes with 1007 (invalid UTF-8), 1009 (too big) or 1002 itself.
// One process, one event loop.

const http = require('node:http');
const { WebSocketServer } = require('ws');
const { serverArgs, listen, onShutdown } = require('./common');

const USAGE = `Usage: node ws-server.js [--addr HOST:PORT] [--max-message BYTES]

WebSocket echo server (ws) on /ws and /: text is echoed as text, binary as binary.
Prints "listening ws://HOST:PORT/ws" on stdout when ready; SIGTERM/SIGINT send close 1001 to
every peer and stop it (exit 0).

  --addr HOST:PORT       where to listen; port 0 picks a free one  [127.0.0.1:0]
  --max-message BYTES    largest message; close 1009 beyond         [16777216]
`;

const options = serverArgs(USAGE);

const server = http.createServer({ noDelay: true }, (req, res) => {
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

server.on('upgrade', (req, socket, head) => {
  const path = req.url.split('?', 1)[0];
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

listen(server, options, 'ws', '/ws');

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
