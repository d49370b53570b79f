import ArgumentParser
import Foundation

/// `--header "Name: value"` options as name-value pairs, refusing what is not a valid header.
func parseHeaderOptions(_ headers: [String]) throws -> [(String, String)] {
    try headers.map { header in
        guard let colon = header.firstIndex(of: ":"), colon != header.startIndex else {
            throw ValidationError("--header must be \"Name: value\", got \(header)")
        }
        let name = header[..<colon].trimmingCharacters(in: .whitespaces)
        let value = header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), !value.utf8.contains(where: { $0 < 0x20 && $0 != 0x09 }) else {
            throw ValidationError("--header \(header): not a valid header")
        }
        return (name, value)
    }
}
