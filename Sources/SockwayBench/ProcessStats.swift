import Foundation

/// CPU time and resident memory of a process, read from /proc (Linux).
public struct ProcessStats: Sendable {
    /// User + system CPU seconds, all threads.
    public var cpuSeconds: Double
    /// Resident set size, bytes.
    public var residentBytes: Int

    /// CPUs this process may run on (its affinity, e.g. under `taskset`), from
    /// `Cpus_allowed_list` in /proc/self/status; the online count where that is missing.
    public static func usableCPUs() -> Int {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }),
            let count = countCPUs(list: line.dropFirst("Cpus_allowed_list:".count)), count > 0
        {
            return count
        }
        return max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    /// CPUs in a list such as `0-3,8,10-11`; `nil` if it does not parse.
    static func countCPUs(list: Substring) -> Int? {
        var count = 0
        for part in list.split(separator: ",") {
            let bounds = part.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            switch bounds.count {
            case 1:
                guard bounds[0] != nil else { return nil }
                count += 1
            case 2:
                guard let low = bounds[0], let high = bounds[1], high >= low else { return nil }
                count += high - low + 1
            default:
                return nil
            }
        }
        return count
    }

    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// Another process, by PID; `nil` if /proc has no such process. CPU time comes from each thread's
    /// `schedstat` (nanoseconds) when the kernel has it, else from `stat` (clock ticks, 10 ms).
    public static func of(pid: Int32) -> ProcessStats? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            var stats = parse(stat: stat, status: status)
        else { return nil }
        if let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") {
            var nanoseconds = 0.0
            var complete = true
            for thread in threads {
                guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/schedstat", encoding: .utf8),
                    let first = text.split(separator: " ").first, let value = Double(first)
                else {
                    complete = false
                    break
                }
                nanoseconds += value
            }
            if complete, nanoseconds > 0 { stats.cpuSeconds = nanoseconds / 1e9 }
        }
        return stats
    }

    /// Parses `/proc/PID/stat` (utime and stime, fields 14 and 15) and `/proc/PID/status` (VmRSS).
    static func parse(stat: String, status: String) -> ProcessStats? {
        // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state), so utime (14) is fields[11] and stime (15) is fields[12].
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        var rss = 0
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            rss = (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1024
        }
        return ProcessStats(cpuSeconds: (user + system) / ticksPerSecond, residentBytes: rss)
    }

    /// This process's CPU seconds (getrusage).
    public static func selfCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1_000_000 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}
