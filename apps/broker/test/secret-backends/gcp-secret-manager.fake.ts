/**
 * A FAKE GCP Secret Manager: not Google's service. Google publishes no emulator and none was
 * found in the registries, so the backend is tested against this double of the REST surface the
 * official client uses in REST mode (`fallback: true`), written from the published v1 reference
 * (cloud.google.com/secret-manager/docs/reference/rest): `projects.secrets.create` (409
 * ALREADY_EXISTS), `projects.secrets.addVersion` (404 NOT_FOUND without the secret; `dataCrc32c`
 * checked when sent), `projects.secrets.versions.access` (`latest` or a number; 404), `projects.
 * secrets.delete` (404 when absent), `projects.secrets.list` (pageSize/pageToken). Errors use
 * Google's JSON error shape `{error: {code, message, status}}`. A project outside `projects`
 * answers 403 PERMISSION_DENIED; `failNext` injects 429/503 answers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32c } from '../../src/modules/secrets/gcp-secret-manager.backend.ts';

interface FakeSecret {
  name: string;
  createTime: string;
  labels: Record<string, string>;
  versions: { data: string; createTime: string }[];
}

const STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ALREADY_EXISTS',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

export class FakeGcpSecretManager {
  /** Projects the caller may use; others answer PERMISSION_DENIED. */
  readonly projects: Set<string>;
  readonly secrets = new Map<string, FakeSecret>();
  readonly requests: { method: string; url: string; status: number }[] = [];
  private readonly failures: { status: number; name: string | undefined }[] = [];
  private server: Server | undefined;
  port = 0;

  constructor(projects: string[]) {
    this.projects = new Set(projects);
  }

  /** `name` overrides the status name, e.g. a 400 FAILED_PRECONDITION (a disabled version). */
  failNext(status: number, count = 1, name?: string): void {
    for (let i = 0; i < count; i++) this.failures.push({ status, name });
  }

  async start(): Promise<number> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse, raw: string) {
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const path = decodeURIComponent(url.pathname);
    const reply = (status: number, body: unknown) => {
      this.requests.push({ method, url: path, status });
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const fail = (status: number, message: string, name?: string) =>
      reply(status, { error: { code: status, message, status: name ?? STATUS[status] ?? 'UNKNOWN' } });
    const injected = this.failures.shift();
    if (injected !== undefined) return fail(injected.status, 'injected failure', injected.name);
    const project = /^\/v1\/projects\/([^/:]+)/.exec(path)?.[1];
    if (project === undefined) return fail(404, `no route for ${path}`);
    if (!this.projects.has(project))
      return fail(
        403,
        `Permission 'secretmanager.secrets.get' denied for resource 'projects/${project}' (or it may not exist).`,
      );
    let body: Record<string, unknown> = {};
    try {
      body = raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
    } catch {
      return fail(400, 'Invalid JSON payload received.');
    }
    const now = new Date().toISOString();
    const parent = `projects/${project}`;

    if (method === 'POST' && path === `/v1/${parent}/secrets`) {
      const id = url.searchParams.get('secretId') ?? '';
      if (!/^[A-Za-z0-9_-]{1,255}$/.test(id)) return fail(400, 'Secret ID must match [a-zA-Z_0-9-]{1,255}.');
      const name = `${parent}/secrets/${id}`;
      if (this.secrets.has(name)) return fail(409, `Secret [${name}] already exists.`);
      const replication = (body as { replication?: unknown }).replication;
      if (replication === undefined) return fail(400, 'Secret.replication is required.');
      const secret: FakeSecret = {
        name,
        createTime: now,
        labels: ((body as { labels?: Record<string, string> }).labels ?? {}) as Record<string, string>,
        versions: [],
      };
      this.secrets.set(name, secret);
      return reply(200, { name, createTime: now, replication, labels: secret.labels });
    }
    if (method === 'GET' && path === `/v1/${parent}/secrets`) {
      const size = Math.min(Number(url.searchParams.get('pageSize') ?? 25) || 25, 25_000);
      const start = Number(url.searchParams.get('pageToken') ?? 0) || 0;
      const all = [...this.secrets.values()]
        .filter((s) => s.name.startsWith(`${parent}/`))
        .sort((a, b) => (a.name < b.name ? -1 : 1));
      const page = all.slice(start, start + size);
      return reply(200, {
        secrets: page.map((s) => ({
          name: s.name,
          createTime: s.createTime,
          labels: s.labels,
          replication: { automatic: {} },
        })),
        ...(start + size < all.length ? { nextPageToken: String(start + size) } : {}),
        totalSize: all.length,
      });
    }
    const addVersion = /^\/v1\/(projects\/[^/]+\/secrets\/[^/:]+):addVersion$/.exec(path);
    const access = /^\/v1\/(projects\/[^/]+\/secrets\/[^/:]+)\/versions\/([^/:]+):access$/.exec(path);
    const single = /^\/v1\/(projects\/[^/]+\/secrets\/[^/:]+)$/.exec(path);
    if (method === 'POST' && addVersion) {
      const secret = this.secrets.get(addVersion[1] as string);
      if (!secret) return fail(404, `Secret [${addVersion[1]}] not found.`);
      const payload = (body as { payload?: { data?: string; dataCrc32c?: string } }).payload;
      if (typeof payload?.data !== 'string') return fail(400, 'Payload is required.');
      const bytes = Buffer.from(payload.data, 'base64');
      if (bytes.length > 65536) return fail(400, 'Secret payload cannot exceed 65536 bytes.');
      if (payload.dataCrc32c !== undefined && String(crc32c(bytes)) !== String(payload.dataCrc32c))
        return fail(400, 'Checksum mismatch.');
      secret.versions.push({ data: payload.data, createTime: now });
      return reply(200, {
        name: `${secret.name}/versions/${secret.versions.length}`,
        createTime: now,
        state: 'ENABLED',
      });
    }
    if (method === 'GET' && access) {
      const m = access;
      const secret = this.secrets.get(m[1] as string);
      const which = m[2] === 'latest' ? (secret?.versions.length ?? 0) : Number(m[2]);
      const version = secret?.versions[which - 1];
      if (!secret || !version) return fail(404, `Secret Version [${m[1]}/versions/${m[2]}] not found.`);
      const data = Buffer.from(version.data, 'base64');
      return reply(200, {
        name: `${secret.name}/versions/${which}`,
        payload: { data: version.data, dataCrc32c: String(crc32c(data)) },
      });
    }
    if (method === 'DELETE' && single) {
      if (!this.secrets.delete(single[1] as string)) return fail(404, `Secret [${single[1]}] not found.`);
      return reply(200, {});
    }
    return fail(404, `no route for ${method} ${path}`);
  }
}
