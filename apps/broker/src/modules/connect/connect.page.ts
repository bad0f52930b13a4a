import { type Brand, brandHeader, escapeHtml, imgSrc, textOn } from '../consent/brand.ts';
import type { ConnectOutcome } from './connect.outcome.ts';
import { messageOf, returnOf } from './connect.outcome.ts';
import type { OfferedProvider } from './connect.service.ts';

const style = (brand: Brand) => `:root{--accent:${brand.color};--on-accent:${textOn(brand.color)}}
*{box-sizing:border-box}body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f5f7;color:#1b1f24;margin:0;line-height:1.5}
header.brand{display:flex;align-items:center;gap:.6rem;max-width:30rem;margin:2rem auto 0;padding:0 1rem;font-weight:600}
header.brand img{height:2rem;width:auto;max-width:8rem}
main{max-width:30rem;margin:1rem auto 2rem;background:#fff;padding:1.5rem;border-radius:10px;box-shadow:0 1px 3px #0002;border-top:4px solid var(--accent)}
@media (max-width:32rem){header.brand{margin-top:1rem;padding:0 .75rem}main{margin:.75rem;padding:1.25rem}}
h1{font-size:1.35rem;margin:0 0 .5rem}p{margin:.5rem 0}
ul.providers{list-style:none;padding:0;margin:1.25rem 0}ul.providers li{margin:.6rem 0}
a.provider{display:flex;flex-direction:column;padding:.8rem 1rem;border:1px solid #c9ced6;border-radius:8px;color:inherit;text-decoration:none;min-height:3rem}
a.provider:hover,a.provider:focus-visible{border-color:var(--accent);box-shadow:0 0 0 2px var(--accent);outline:none}
a.provider strong{font-size:1.05rem}a.provider span{color:#4b535d;font-size:.9rem}
a.button{display:inline-block;margin-top:1rem;padding:.7rem 1.3rem;border-radius:6px;background:var(--accent);color:var(--on-accent);text-decoration:none;font-weight:600}
a.button:focus-visible{outline:3px solid #1b1f24;outline-offset:2px}
a.secondary,button.secondary{color:#1b1f24}button.secondary{background:none;border:0;padding:0;font:inherit;text-decoration:underline;cursor:pointer}.note{color:#4b535d;font-size:.85rem;margin-top:1.5rem}
.status{font-size:2rem;line-height:1;margin:0 0 .5rem;color:#1a7f37}code{background:#eef0f3;padding:.1rem .3rem;border-radius:4px}`;

/** Headers of every connect page: no inline script, styles and the one script by nonce, the logo's origin for images. */
export function connectPageHeaders(
  nonce: string,
  brand: Brand,
  withScript: boolean,
  /** `'self'` on the offer page, whose cancel button posts to the broker. */
  formAction = "'none'",
): Record<string, string> {
  const logo = imgSrc(brand);
  const script = withScript ? `; script-src 'nonce-${nonce}'` : '';
  return {
    'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}'; img-src ${logo}${script}; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  };
}

function layout(nonce: string, brand: Brand, title: string, body: string, tail = ''): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)} · ${escapeHtml(brand.name)}</title><style nonce="${nonce}">${style(brand)}</style></head>
<body>${brandHeader(brand)}
<main>${body}</main>${tail}</body></html>`;
}

/** The session's page: the providers offered, each a link that starts its consent. */
export function offerPage(
  nonce: string,
  brand: Brand,
  view: { token: string; sessionId: string; providers: readonly OfferedProvider[] },
): string {
  const items = view.providers
    .map((p) => {
      const href = `/connect/session/pick?token=${encodeURIComponent(view.token)}&provider=${encodeURIComponent(p.id)}`;
      const how = p.auth_type === 'oauth2' ? `Sign in with ${p.name}` : 'Enter your credentials';
      const description = p.description ? `${p.description} · ${how}` : how;
      return `<li><a class="provider" href="${escapeHtml(href)}"><strong>${escapeHtml(p.name)}</strong><span>${escapeHtml(description)}</span></a></li>`;
    })
    .join('\n');
  const body =
    view.providers.length === 0
      ? '<h1>Nothing to connect</h1><p>None of the accounts this link offered can be connected any more.</p>'
      : `<h1>Connect an account</h1>
<p>Choose the account to connect to ${escapeHtml(brand.name)}.</p>
<ul class="providers">
${items}
</ul>`;
  return layout(
    nonce,
    brand,
    'Connect an account',
    `${body}
<form method="post" action="/connect/session/cancel"><input type="hidden" name="token" value="${escapeHtml(view.token)}"><button type="submit" class="secondary">Cancel and return to the application</button></form>
<p class="note">You sign in at the provider itself, or type your credentials into this page of ${escapeHtml(brand.name)}, which stores them encrypted. The application that sent you here never sees them.</p>`,
  );
}

const FAILURE_TEXT: Record<string, { title: string; message: string }> = {
  denied: { title: 'Not connected', message: 'You chose not to connect this account. Nothing was stored.' },
  expired: {
    title: 'This link has expired',
    message: 'It was already used or is too old. Go back to the application and start again.',
  },
  failed: {
    title: 'The connection failed',
    message: 'The account could not be connected. Go back to the application and try again.',
  },
};

/** The last page: the outcome, a link back to the app, and (in a popup) the message to the opener. */
export function finishPage(nonce: string, brand: Brand, outcome: ConnectOutcome): string {
  const back = returnOf(outcome);
  const link =
    back === null
      ? '<p>You can close this window.</p>'
      : `<p><a class="button" href="${escapeHtml(back.href)}">Return to the application</a></p>`;
  // The data the script posts; the script itself is a file of ours (no inline script).
  const data =
    back === null
      ? ''
      : `<div id="nexus-connect-result" hidden data-origin="${escapeHtml(back.origin)}" data-message="${escapeHtml(JSON.stringify(messageOf(outcome)))}"></div>
<script nonce="${nonce}" src="/connect/assets/finish.js"></script>`;
  if (outcome.status === 'success')
    return layout(
      nonce,
      brand,
      'Connected',
      `<p class="status" aria-hidden="true">✓</p><h1>Connected</h1>
<p>Your ${escapeHtml(outcome.provider)} account is now connected to ${escapeHtml(brand.name)}.</p>
${link}`,
      data,
    );
  const text = FAILURE_TEXT[outcome.reason]!;
  return layout(
    nonce,
    brand,
    text.title,
    `<h1>${escapeHtml(text.title)}</h1>
<p>${escapeHtml(text.message)}</p>
<p>Code: <code>${escapeHtml(outcome.error)}</code></p>
${link}`,
    data,
  );
}

/** A page with only a message (an unknown link). */
export function messagePage(nonce: string, brand: Brand, title: string, message: string): string {
  return layout(nonce, brand, title, `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>`);
}

/**
 * The finish page's script: posts the outcome to the window that opened the popup, addressed to
 * the return URL's origin only (the browser drops it for any other opener). Served as a file.
 */
export const FINISH_SCRIPT = `(function () {
  var el = document.getElementById('nexus-connect-result');
  if (!el || !window.opener) return;
  try {
    window.opener.postMessage(JSON.parse(el.getAttribute('data-message')), el.getAttribute('data-origin'));
  } catch (e) {}
})();
`;
