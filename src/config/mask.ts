/**
 * maskUrlUserinfo hides the userinfo (`user:password@`) of every URL in a text, wherever settings
 * or messages are shown: `tas config check`, `/management/status`, log lines. URL-valued settings
 * (TAS_REDIS_URL, TAS_KDS_PROXY, TAS_KDS_BASE_URL, and any added later) may carry credentials
 * there; those are not `secret` settings (the rest of the URL is what operators need to see), so
 * the userinfo alone is replaced, always with the same `***` (its length would say something).
 *
 * It works on free text too (an error message quoting a URL), so it matches `scheme://…@`
 * anywhere, with the authority running up to the last `@` before the path: an unencoded `@` in a
 * password is still covered.
 */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi;

export function maskUrlUserinfo(text: string): string {
  // Fast path: most strings have no URL with userinfo.
  if (!text.includes('://') || !text.includes('@')) return text;
  return text.replace(URL_USERINFO, '$1***@');
}

/**
 * maskUrlsDeep returns a copy of a JSON-like value with maskUrlUserinfo applied to every string
 * (object members, array items; an Error becomes a masked copy of the same class). Bounded
 * depth: deeper values are returned as they are (status documents and log fields are shallow).
 */
export function maskUrlsDeep(v: unknown, depth = 8): unknown {
  if (typeof v === 'string') return maskUrlUserinfo(v);
  if (v === null || typeof v !== 'object' || depth <= 0) return v;
  if (Array.isArray(v)) return v.map((x) => maskUrlsDeep(x, depth - 1));
  if (v instanceof Error) {
    // A copy of the same class (loggers read constructor.name, message, stack, own members, cause).
    const copy = Object.create(Object.getPrototypeOf(v) as object) as Error & Record<string, unknown>;
    const hidden = (value: unknown): PropertyDescriptor => ({ value, writable: true, configurable: true, enumerable: false });
    Object.defineProperties(copy, { message: hidden(maskUrlUserinfo(v.message)), stack: hidden(v.stack === undefined ? undefined : maskUrlUserinfo(v.stack)) });
    if (v.cause !== undefined) Object.defineProperty(copy, 'cause', hidden(maskUrlsDeep(v.cause, depth - 1)));
    for (const [k, x] of Object.entries(v)) copy[k] = maskUrlsDeep(x, depth - 1);
    return copy;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  // Buffers, Dates, Maps and class instances are not walked (they carry no settings text).
  if (proto !== Object.prototype && proto !== null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = maskUrlsDeep(x, depth - 1);
  return out;
}
