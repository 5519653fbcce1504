// Node's TLS echo server for bench/tls/run: tls.createServer, 'data' -> sock.write(d).
// usage: node node_tls_echo.js CERTFILE KEYFILE PORT
const fs = require("fs");
const tls = require("tls");
const [cert, key, port] = process.argv.slice(2);
tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (sock) => {
  sock.setNoDelay(true);
  sock.on("data", (d) => sock.write(d));
  sock.on("error", () => {});
}).listen(Number(port), "127.0.0.1");
