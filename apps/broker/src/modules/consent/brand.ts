/**
 * The operator's branding of the hosted pages (NEXUS_CONNECT_BRAND_*): the capture form here, and
 * the connect session pages (modules/connect). Only data and markup helpers: no I/O.
 */
export interface Brand {
  readonly name: string;
  /** Shown at the top of each page; its origin is the pages' only `img-src`. */
  readonly logoUrl: string | undefined;
  /** `#rrggbb`. */
  readonly color: string;
}

export const escapeHtml = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

/** Black or white, whichever contrasts more with the accent (WCAG 2 relative luminance). */
export function textOn(hex: string): string {
  const channel = (i: number) => {
    const c = Number.parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const l = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
  return (l + 0.05) / 0.05 > 1.05 / (l + 0.05) ? '#000000' : '#ffffff';
}

/** The CSP `img-src` of a branded page: the logo's origin, or nothing at all. */
export const imgSrc = (brand: Brand | undefined) =>
  brand?.logoUrl === undefined ? "'none'" : new URL(brand.logoUrl).origin;

/** The page header: the logo (decorative: the name follows it) and the name. */
export function brandHeader(brand: Brand): string {
  const logo =
    brand.logoUrl === undefined ? '' : `<img src="${escapeHtml(brand.logoUrl)}" alt="" height="32">`;
  return `<header class="brand">${logo}<span>${escapeHtml(brand.name)}</span></header>`;
}
