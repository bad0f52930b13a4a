/**
 * The ceiling a bench compares the broker with: a Fastify hello (`GET /` → `{"hello":"world"}`) on
 * the same Node, started by the bench in the same run, since machines here differ by 2×. Run as a
 * child process: `node bench/lib/hello.ts PORT`; it prints `listening` when ready.
 */
import Fastify from 'fastify';

const port = Number(process.argv[2]);
const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write('listening\n');
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
