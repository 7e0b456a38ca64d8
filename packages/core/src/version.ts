/** The sharedLLM version, advertised over mDNS and in /healthz. Kept equal to package.json by a test. */
export const VERSION = '0.1.0'
