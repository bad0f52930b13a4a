// The image's HEALTHCHECK: exit 0 when GET /health answers 200 on this container's HOST and PORT.
// Written in Node because the slim base image has neither curl nor wget.
const { HOST = '', PORT = '8080' } = process.env;
// A wildcard address is not one to connect to; loopback reaches a listener bound to it.
const host = HOST === '' || HOST === '0.0.0.0' || HOST === '::' ? '127.0.0.1' : HOST;
const url = `http://${host.includes(':') ? `[${host}]` : host}:${PORT}/health`;
try {
  const response = await fetch(url, { signal: AbortSignal.timeout(3_000) });
  process.exitCode = response.ok ? 0 : 1;
} catch {
  process.exitCode = 1;
}
