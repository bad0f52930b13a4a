import { isLoopbackName, isSpecialAddress, LOOPBACK_CIDRS, literalHost } from './address-guard.ts';
import { cidrMatcher } from './cidr.ts';

/** What the broker may call, as the configuration decides it. */
export interface EndpointRules {
  /** Outside production: plain http and loopback hosts, for a local identity provider. */
  readonly allowLoopback: boolean;
  /** `NEXUS_EGRESS_ALLOWED_CIDRS`: special-purpose ranges the operator opened. */
  readonly allowCidrs: readonly string[];
}

/** The ranges identity-provider endpoints may reach despite being special: the operator's, and loopback in development. */
export function identityProviderCidrs(rules: EndpointRules): readonly string[] {
  return rules.allowLoopback ? [...rules.allowCidrs, ...LOOPBACK_CIDRS] : rules.allowCidrs;
}

/**
 * What is wrong with the host of a URL the broker will call, judged from the URL alone: a
 * special-purpose address written as a literal (the WHATWG parser has already turned decimal,
 * octal, hexadecimal, short and full-width forms into a dotted quad, and IPv4-mapped IPv6 into its
 * IPv6 form), or a name that is loopback by definition (`localhost`, `*.localhost`, with or without
 * the trailing dot). Other names are judged when they are called, after DNS resolution (a name's
 * addresses can change; the check at request time is the one that counts).
 */
export function addressProblem(url: URL, rules: EndpointRules): string | undefined {
  const allowed = cidrMatcher(identityProviderCidrs(rules));
  const literal = literalHost(url);
  if (literal !== undefined) {
    if (allowed(literal) || !isSpecialAddress(literal)) return undefined;
    return `must not name ${literal}, a loopback, private, link-local or other special-purpose address (NEXUS_EGRESS_ALLOWED_CIDRS opens a range)`;
  }
  if (isLoopbackName(url.hostname) && !rules.allowLoopback)
    return `must not name ${url.hostname}, a loopback host (allowed outside production only)`;
  return undefined;
}

/**
 * The scheme and address rules together, for an endpoint the broker learnt rather than was given
 * (a discovery document's): https, or plain http to loopback outside production; then
 * `addressProblem`.
 */
export function endpointProblem(url: URL, rules: EndpointRules): string | undefined {
  if (url.username !== '' || url.password !== '') return 'must not contain credentials';
  const loopback = isLoopbackName(url.hostname) || cidrMatcher(LOOPBACK_CIDRS)(literalHost(url) ?? '');
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && rules.allowLoopback && loopback))
    return 'must use https';
  return addressProblem(url, rules);
}
