// The claims a check accepts (`VerifiedAccessToken`), the algorithms, the index: a guard's users see them through it.
@_exported import TesseraTokens
