/// "Did you mean …?" for a mistyped subcommand, option or name.
enum Suggestion {
    /// The candidate closest to `word` by edit distance, when it is close enough to be what was meant (at most a
    /// third of its letters wrong, and at most three), or a unique candidate that starts with it.
    static func closest(to word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, Self.distance(word, $0)) }.sorted { $0.1 < $1.1 }
        if let best = scored.first, best.1 <= min(3, max(1, best.0.count / 3)) { return best.0 }
        let prefixed = candidates.filter { $0.hasPrefix(word) }
        return prefixed.count == 1 && word.count >= 2 ? prefixed[0] : nil
    }

    /// Levenshtein distance.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
