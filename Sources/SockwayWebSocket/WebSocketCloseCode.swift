/// RFC 6455 close codes that may appear on the wire, and their rules.
public enum WebSocketCloseCode {
    public static let normalClosure: UInt16 = 1000
    public static let goingAway: UInt16 = 1001
    public static let protocolError: UInt16 = 1002
    public static let unacceptableData: UInt16 = 1003
    public static let invalidPayload: UInt16 = 1007
    public static let policyViolation: UInt16 = 1008
    public static let messageTooBig: UInt16 = 1009
    public static let internalError: UInt16 = 1011
    public static let tryAgainLater: UInt16 = 1013

    /// Whether `code` may be sent in a close frame (RFC 6455 §7.4, IANA registry): 1000–1003, 1007–1014
    /// and the 3000–4999 ranges for libraries and applications. 1004–1006 and 1015 are reserved for
    /// local use and never sent.
    public static func isSendable(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }
}
