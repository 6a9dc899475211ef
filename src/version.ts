/** VERSION is the semver of tas, read from package.json at build time. */
// From src/ (tsx) package.json is one level up; from dist/src/ (compiled) it is two levels up.
function readVersion(): string {
  for (const p of ['../package.json', '../../package.json']) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return (require(p) as { version: string }).version;
    } catch {
      /* try the next location */
    }
  }
  throw new Error('package.json not found next to src/ or dist/src/');
}
export const VERSION: string = readVersion();
