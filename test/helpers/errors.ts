/** Settles a promise into its error (or null), for asserting on error properties. */
export async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return null;
  } catch (e) {
    return e;
  }
}
