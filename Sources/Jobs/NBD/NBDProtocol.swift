/// Wire constants of the NBD fixed-newstyle handshake, from the protocol specification
/// (NetworkBlockDevice/nbd, doc/proto.md, "Handshake" and "Option types").
enum NBDProtocol {
    /// "NBDMAGIC", the first 8 bytes any NBD server sends.
    static let initMagic: UInt64 = 0x4E42_444D_4147_4943
    /// "IHAVEOPT": newstyle negotiation from the server, and the prefix of every client option.
    static let optionMagic: UInt64 = 0x4948_4156_454F_5054
    /// Oldstyle negotiation, which has no options (and no export names).
    static let oldstyleMagic: UInt64 = 0x0042_0281_8612_53
    /// Prefix of every option reply.
    static let replyMagic: UInt64 = 0x0003_E889_0455_65A9

    /// Handshake flags (server) and client flags share these bits.
    static let flagFixedNewstyle: UInt16 = 1 << 0
    static let flagNoZeroes: UInt16 = 1 << 1

    static let optionAbort: UInt32 = 2
    static let optionInfo: UInt32 = 6

    static let replyAck: UInt32 = 1
    static let replyInfo: UInt32 = 3
    static let replyErrorBit: UInt32 = 1 << 31
    static let replyErrorUnsupported: UInt32 = replyErrorBit | 1
    static let replyErrorPolicy: UInt32 = replyErrorBit | 2
    static let replyErrorUnknown: UInt32 = replyErrorBit | 6

    /// NBD_INFO_EXPORT: export size (64 bits) and transmission flags (16 bits).
    static let infoExport: UInt16 = 0

    /// Option replies larger than this are not something a size probe needs; refusing
    /// them keeps a hostile peer from making us buffer gigabytes.
    static let maximumReplyLength: UInt32 = 64 * 1024
}
