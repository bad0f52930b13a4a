/**
 * The look of every page `nexus dev` renders, the demo identity provider's and the broker's
 * `/dev` pages alike: one layout with a "demo" banner that no page can leave out, no script, and
 * styles allowed by a per-response nonce.
 */
import { randomBytes } from 'node:crypto';

export const escapeHtml = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

const STYLE = `body{font-family:system-ui,sans-serif;background:#f6f7f9;color:#1b1f24;margin:0}
.demo{background:#fff8c5;border-bottom:2px solid #d4a72c;padding:.6rem 1rem;text-align:center;font-weight:600}
main{max-width:44rem;margin:2rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 3px #0002}
h1{font-size:1.35rem;margin-top:0}h2{font-size:1.05rem;margin-top:1.6rem}
label{display:block;font-weight:600;margin:1rem 0 .3rem}
input{width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #b8bfc8;border-radius:4px;font-size:1rem}
button,.button{display:inline-block;margin:1.2rem .6rem 0 0;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:4px;background:#1f6feb;color:#fff;text-decoration:none;cursor:pointer}
button.secondary{background:#6e7781}
pre{background:#0d1117;color:#e6edf3;padding:1rem;border-radius:6px;overflow-x:auto;font-size:.85rem;white-space:pre-wrap;word-break:break-all}
code{font-size:.9em}.error{background:#ffebe9;border:1px solid #ff818266;padding:.6rem;border-radius:4px}
.ok{background:#dafbe1;border:1px solid #4ac26b66;padding:.6rem;border-radius:4px}
.note{color:#57606a;font-size:.9rem}ul{padding-left:1.2rem}`;

export interface DemoPage {
  readonly html: string;
  readonly headers: Record<string, string>;
}

/**
 * A full page under the demo banner. `formTo` lists the origins its forms may post to besides its
 * own (the Content-Security-Policy's `form-action`).
 */
export function demoPage(
  title: string,
  banner: string,
  body: string,
  options: { formTo?: readonly string[] } = {},
): DemoPage {
  const nonce = randomBytes(16).toString('base64');
  const formAction = ["'self'", ...(options.formTo ?? [])].join(' ');
  return {
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
      'cache-control': 'no-store',
    },
    html: `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)} (demo)</title><style nonce="${nonce}">${STYLE}</style></head>
<body><div class="demo" role="note">DEMO: ${escapeHtml(banner)}</div><main>${body}</main></body></html>`,
  };
}
