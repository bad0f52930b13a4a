/**
 * Applies a connection's strategy to an outgoing request, exactly as the v1 contract's strategies
 * table says (the broker's own reference is apps/broker/src/modules/strategies/apply.ts).
 */
import { createHmac } from 'node:crypto';
import { StrategyError } from './errors.ts';
import { signSigV4 } from './sigv4.ts';
import type { Strategy } from './types.ts';

/** A request with its body buffered, so it can be signed and replayed. */
export interface OutgoingRequest {
  url: URL;
  method: string;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: Uint8Array | undefined;
}

/** A `{field}` placeholder of a `headers` template: a credential field's name in braces. */
const PLACEHOLDER = /\{([A-Za-z0-9_.-]{1,64})\}/g;

export interface ApplyOptions {
  /** Signing time for aws_sigv4. */
  now: () => number;
}

/** Returns a new request with the credential applied; the input is not changed. */
export async function applyStrategy(
  strategy: Strategy,
  credentials: Readonly<Record<string, string>>,
  request: OutgoingRequest,
  options: ApplyOptions,
): Promise<OutgoingRequest> {
  const c = strategy.config ?? {};
  const field = (name: string): string => {
    const value = credentials[name];
    if (value === undefined || value === '')
      throw new StrategyError(`The ${strategy.type} credential has no field "${name}".`, {
        code: 'strategy_not_applicable',
      });
    return value;
  };
  const required = (key: string): string => {
    const value = c[key];
    if (value === undefined || value === '')
      throw new StrategyError(`The ${strategy.type} strategy has no "${key}" in its config.`, {
        code: 'strategy_not_applicable',
      });
    return value;
  };
  const withHeader = (name: string, value: string): OutgoingRequest => ({
    ...request,
    headers: { ...request.headers, [name.toLowerCase()]: value },
  });

  switch (strategy.type) {
    case 'oauth2':
      return withHeader('authorization', `Bearer ${field('access_token')}`);
    case 'header':
      return withHeader(
        c.header_name || 'Authorization',
        `${c.value_prefix ?? ''}${field(c.credential_field || 'api_key')}`,
      );
    case 'headers': {
      // Each `{field}` replaced once by that credential field; the text around it kept.
      const entries = Object.entries(c);
      if (entries.length === 0)
        throw new StrategyError('The headers strategy has no header in its config.', {
          code: 'strategy_not_applicable',
        });
      const headers = { ...request.headers };
      for (const [name, template] of entries)
        headers[name.toLowerCase()] = template.replace(PLACEHOLDER, (_, f: string) => field(f));
      return { ...request, headers };
    }
    case 'query_param': {
      const url = new URL(request.url);
      url.searchParams.set(required('param_name'), field(c.credential_field || 'api_key'));
      return { ...request, url };
    }
    case 'basic_auth': {
      const user = field(c.username_field || 'username');
      const password = field(c.password_field || 'password');
      return withHeader(
        'authorization',
        `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`,
      );
    }
    case 'hmac_payload': {
      const header = required('header_name');
      const algo = c.algo || 'sha256';
      const encoding = c.encoding || 'hex';
      if (algo !== 'sha256' && algo !== 'sha1')
        throw new StrategyError(`hmac_payload algo "${algo}" is not supported (sha256 or sha1).`, {
          code: 'strategy_not_applicable',
        });
      if (encoding !== 'hex' && encoding !== 'base64')
        throw new StrategyError(`hmac_payload encoding "${encoding}" is not supported (hex or base64).`, {
          code: 'strategy_not_applicable',
        });
      // Over the exact bytes sent: the body is buffered before this runs and sent unchanged.
      const mac = createHmac(algo, field(c.secret_field || 'api_secret'))
        .update(request.body ?? new Uint8Array())
        .digest(encoding);
      return withHeader(header, mac);
    }
    case 'aws_sigv4': {
      const headers = await signSigV4({
        url: request.url,
        method: request.method,
        headers: request.headers,
        body: request.body,
        region: c.region || 'us-east-1',
        service: required('service'),
        accessKeyId: field('access_key'),
        secretAccessKey: field('secret_key'),
        sessionToken: credentials.session_token || undefined,
        signingDate: new Date(options.now()),
      });
      const lower: Record<string, string> = {};
      for (const [name, value] of Object.entries(headers)) lower[name.toLowerCase()] = value;
      // fetch sets Host itself from the URL (the value that was signed).
      delete lower.host;
      return { ...request, headers: lower };
    }
    default:
      throw new StrategyError(`Unknown strategy type "${(strategy as { type: string }).type}".`, {
        code: 'strategy_not_applicable',
      });
  }
}
