/// A boundary's failure codes: stable snake_case raw values (`error_code`), each knowing
/// whether retrying the same operation later can succeed without a human changing something.
public protocol FailureCode: RawRepresentable<String>, Sendable, Hashable {
    var isTransient: Bool { get }
}

/// The error of a boundary whose failures are a code and a sentence (the by-id devices', NBD's):
/// `code` lands in `volume_operations.error_code`, `message` names the cause and the fix.
public struct CodedError<Code: FailureCode>: Error, CustomStringConvertible, Sendable, Equatable {
    /// The typed code; `code` is its raw value.
    public let kind: Code
    public let message: String

    public init(_ kind: Code, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var code: String { kind.rawValue }
    public var isTransient: Bool { kind.isTransient }
    public var description: String { "\(code): \(message)" }
}
