// bench/http: the Node peers. "server PORT": node:http hello world. "client URL N C": N
// keep-alive GETs from C concurrent loops with fetch; prints the seconds.
const [mode, a, b, c] = process.argv.slice(2);
if (mode === "server") {
  require("http").createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("Hello, world!");
  }).listen(Number(a), "127.0.0.1");
} else {
  const url = a, n = Number(b), conc = Number(c);
  let left = n;
  const t0 = performance.now();
  const worker = async () => {
    while (left > 0) {
      left--;
      const r = await fetch(url);
      const body = await r.text();
      if (r.status !== 200 || body.length === 0) throw new Error("bad response");
    }
  };
  Promise.all(Array.from({ length: conc }, worker)).then(() => {
    console.log(((performance.now() - t0) / 1000).toFixed(3));
  });
}
