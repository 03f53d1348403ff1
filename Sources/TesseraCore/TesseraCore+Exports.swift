// What the server and every guarded service share (the verifier, the revocation index, log entries, public keys)
// is TesseraTokens'; Core's users see it through Core.
@_exported import TesseraTokens
