/// What an account may do: `user` reaches its own account, `admin` also the admin routes.
public enum Role: String, Sendable, Codable, CaseIterable {
    case user
    case admin
}
