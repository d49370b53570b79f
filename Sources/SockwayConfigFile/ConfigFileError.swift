/// Why a config file was refused, with where: printed as `sockway.yaml:7: unknown key "prot"`.
public struct ConfigFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file as it was named.
    public var path: String
    /// The 1-based line of the offending key or value; `nil` when the file as a whole is at fault.
    public var line: Int?
    /// The offending key, when there is one.
    public var key: String?
    /// What is wrong, naming the key.
    public var message: String

    public init(path: String, line: Int?, key: String?, message: String) {
        self.path = path
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        if let line { "\(path):\(line): \(message)" } else { "\(path): \(message)" }
    }
}
