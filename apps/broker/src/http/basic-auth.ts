/**
 * `Authorization: Basic` client id and secret, each form-urlencoded before encoding (RFC 6749
 * §2.3.1). Undefined when the header is absent or malformed. Read by the agents' token endpoint and
 * by the failed-authentication counter, which must agree on who a client is.
 */
export function basicCredentials(
  header: string | undefined,
): { clientId: string; secret: string } | undefined {
  const match = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(header);
  if (match === null) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  try {
    return {
      clientId: decodeURIComponent(decoded.slice(0, colon).replaceAll('+', ' ')),
      secret: decodeURIComponent(decoded.slice(colon + 1).replaceAll('+', ' ')),
    };
  } catch {
    return undefined;
  }
}
