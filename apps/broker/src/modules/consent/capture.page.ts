import { type Brand, brandHeader, escapeHtml, imgSrc, textOn } from './brand.ts';
import type { CaptureField } from './capture.schema.ts';

const STYLE = `body{font-family:system-ui,sans-serif;background:#f6f7f9;color:#1b1f24;margin:0}
main{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 3px #0002}
h1{font-size:1.3rem;margin-top:0}label{display:block;font-weight:600;margin:1rem 0 .3rem}
input{width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #b8bfc8;border-radius:4px;font-size:1rem}
small{color:#57606a}button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:4px;background:var(--accent,#1f6feb);color:var(--on-accent,#fff);font:inherit;font-weight:600}
.error{background:#ffebe9;border:1px solid #ff818266;padding:.6rem;border-radius:4px}.note{color:#57606a;font-size:.85rem;margin-top:1.5rem}
.field-error{color:#cf222e;font-size:.9rem;margin:.3rem 0 0}input[aria-invalid="true"]{border-color:#cf222e}
.help{background:#f1f5fd;border-left:3px solid var(--accent,#1f6feb);padding:.5rem .75rem}a{color:#0b57c2}.cancel{margin-top:1rem}button.secondary{margin-top:0;padding:0;background:none;color:#0b57c2;font-weight:400;text-decoration:underline;cursor:pointer}
header.brand{display:flex;align-items:center;gap:.6rem;max-width:32rem;margin:2rem auto 0;padding:0 2rem;font-weight:600}header.brand+main{margin-top:1rem;border-top:4px solid var(--accent)}
header.brand img{height:2rem;width:auto;max-width:8rem}
@media (max-width:34rem){main{margin:.75rem;padding:1.25rem}header.brand{margin-top:1rem;padding:0 .75rem}}`;

const brandStyle = (brand: Brand | undefined) =>
  brand === undefined ? '' : `:root{--accent:${brand.color};--on-accent:${textOn(brand.color)}}\n`;

/** Headers for every capture page: no scripts at all, styles by nonce, forms only to us (and the return URL after submit). */
export function capturePageHeaders(
  nonce: string,
  returnOrigin: string | null,
  brand?: Brand,
): Record<string, string> {
  const formAction = returnOrigin === null ? "'self'" : `'self' ${returnOrigin}`;
  const images = brand?.logoUrl === undefined ? '' : `; img-src ${imgSrc(brand)}`;
  return {
    'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}'${images}; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  };
}

function layout(nonce: string, title: string, body: string, brand?: Brand): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style nonce="${nonce}">${brandStyle(brand)}${STYLE}</style></head>
<body>${brand === undefined ? '' : brandHeader(brand)}<main>${body}</main></body></html>`;
}

export function captureFormPage(
  nonce: string,
  form: {
    provider: { name: string; description: string };
    fields: readonly CaptureField[];
    help?: string | undefined;
    docs_url?: string | undefined;
  },
  state: string,
  errors: readonly { path: string; message: string }[] = [],
  brand?: Brand,
): string {
  // A problem about one field is also shown right under that field, and tied to it for screen readers.
  const fieldErrors = new Map<string, string>();
  for (const e of errors) {
    const name = e.path.startsWith('credentials.') ? e.path.slice('credentials.'.length) : undefined;
    if (name !== undefined && !fieldErrors.has(name)) fieldErrors.set(name, e.message);
  }
  const inputs = form.fields
    .map((f) => {
      const id = `f-${f.name}`;
      const help = f.description ? `<small>${escapeHtml(f.description)}</small>` : '';
      const error = fieldErrors.get(f.name);
      const invalid =
        error === undefined ? '' : ` aria-invalid="true" aria-describedby="${escapeHtml(id)}-error"`;
      const message =
        error === undefined
          ? ''
          : `\n<p class="field-error" id="${escapeHtml(id)}-error">${escapeHtml(error)}</p>`;
      return `<label for="${escapeHtml(id)}">${escapeHtml(f.title)}</label>${help}
<input id="${escapeHtml(id)}" name="${escapeHtml(f.name)}" type="${f.secret ? 'password' : 'text'}" maxlength="${f.maxLength}" autocomplete="off" spellcheck="false"${f.required ? ' required' : ''}${invalid}>${message}`;
    })
    .join('\n');
  const errorList =
    errors.length === 0
      ? ''
      : `<div class="error" role="alert"><p>Please check:</p><ul>${errors.map((e) => `<li>${e.path === '' ? '' : `${escapeHtml(e.path.replace(/^credentials\./, ''))}: `}${escapeHtml(e.message)}</li>`).join('')}</ul></div>`;
  return layout(
    nonce,
    `Connect ${form.provider.name}`,
    `<h1>Connect ${escapeHtml(form.provider.name)}</h1>
${form.provider.description ? `<p>${escapeHtml(form.provider.description)}</p>` : ''}
${form.help ? `<p class="help">${escapeHtml(form.help)}</p>` : ''}
${docsLink(form.provider.name, form.docs_url)}
${errorList}
<form method="post" action="/connect/capture">
<input type="hidden" name="state" value="${escapeHtml(state)}">
${inputs}
<button type="submit">Connect</button>
</form>
<form method="post" action="/connect/capture/cancel" class="cancel">
<input type="hidden" name="state" value="${escapeHtml(state)}">
<button type="submit" class="secondary">Cancel and return to the application</button>
</form>
<p class="note">Your credentials go to ${escapeHtml(brand?.name ?? 'Nexus')}, which stores them encrypted. The application that sent you here never sees them.</p>`,
    brand,
  );
}

/** The provider's documentation (`params.docs_url`, https only), opened in a new tab. */
function docsLink(provider: string, url: string | undefined): string {
  if (url === undefined || !url.startsWith('https://')) return '';
  return `<p><a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">Where to find these in ${escapeHtml(provider)}'s documentation</a></p>`;
}

export function captureMessagePage(nonce: string, title: string, message: string, brand?: Brand): string {
  return layout(nonce, title, `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>`, brand);
}
