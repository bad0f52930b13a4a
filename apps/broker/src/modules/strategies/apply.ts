import { createHmac } from 'node:crypto';
import { expandHeaders } from './headers.ts';
import type { Strategy } from './strategy.ts';

/** A request about to leave the broker, before its credential is applied. */
export interface OutgoingRequest {
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  /** HMAC strategies sign these exact bytes. */
  readonly body: string | Uint8Array;
}

export class StrategyNotApplicable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StrategyNotApplicable';
  }
}

/**
 * Applies a strategy (the v1 contract's table) to a request, the way an agent would. `value_prefix`
 * is prepended verbatim (configure `Bearer ` with its space). AWS SigV4 needs a request signer and
 * is not applied here.
 */
export function applyStrategy(
  strategy: Strategy,
  credentials: Readonly<Record<string, string>>,
  request: OutgoingRequest,
): OutgoingRequest {
  const c = strategy.config;
  const field = (name: string) => {
    const value = credentials[name];
    if (value === undefined) throw new StrategyNotApplicable(`credential field ${name} is missing`);
    return value;
  };
  switch (strategy.type) {
    case 'oauth2':
      return withHeader(request, 'authorization', `Bearer ${field('access_token')}`);
    case 'header':
      return withHeader(
        request,
        c.header_name ?? 'Authorization',
        `${c.value_prefix ?? ''}${field(c.credential_field ?? 'api_key')}`,
      );
    case 'headers': {
      const values = expandHeaders(c, field);
      if (values.length === 0) throw new StrategyNotApplicable('the headers strategy names no header');
      return values.reduce((out, [name, value]) => withHeader(out, name, value), request);
    }
    case 'query_param': {
      if (c.param_name === undefined) throw new StrategyNotApplicable('param_name is not configured');
      const url = new URL(request.url);
      url.searchParams.set(c.param_name, field(c.credential_field ?? 'api_key'));
      return { ...request, url };
    }
    case 'basic_auth': {
      const user = field(c.username_field ?? 'username');
      const password = field(c.password_field ?? 'password');
      return withHeader(
        request,
        'authorization',
        `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
      );
    }
    case 'hmac_payload': {
      if (c.header_name === undefined) throw new StrategyNotApplicable('header_name is not configured');
      const algo = c.algo ?? 'sha256';
      const encoding = c.encoding ?? 'hex';
      // Registration accepts only these; a row that holds another value is refused, never signed otherwise.
      if (algo !== 'sha256' && algo !== 'sha1')
        throw new StrategyNotApplicable(`hmac_payload algo ${algo} is not sha256 or sha1`);
      if (encoding !== 'hex' && encoding !== 'base64')
        throw new StrategyNotApplicable(`hmac_payload encoding ${encoding} is not hex or base64`);
      const mac = createHmac(algo, field(c.secret_field ?? 'api_secret'))
        .update(request.body)
        .digest(encoding);
      return withHeader(request, c.header_name, mac);
    }
    case 'aws_sigv4':
      throw new StrategyNotApplicable('aws_sigv4 requests are signed by the agent, not probed by the broker');
  }
}

function withHeader(request: OutgoingRequest, name: string, value: string): OutgoingRequest {
  return { ...request, headers: { ...request.headers, [name.toLowerCase()]: value } };
}
