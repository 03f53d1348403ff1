import TesseraTokens

extension AccessTokenVerifier {
    /// A verifier of one key.
    public init(key: SigningKey, settings: TokenSettings, cacheCapacity: Int = 65_536) {
        self.init(keys: KeyRing(key: key), settings: settings, cacheCapacity: cacheCapacity)
    }
}
