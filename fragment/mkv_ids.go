package fragment

// Matroska element IDs (RFC 9559), as the writer and the reader use them.
const (
	mkvEBML               = 0x1A45DFA3
	mkvEBMLVersion        = 0x4286
	mkvEBMLReadVersion    = 0x42F7
	mkvEBMLMaxIDLength    = 0x42F2
	mkvEBMLMaxSizeLength  = 0x42F3
	mkvDocType            = 0x4282
	mkvDocTypeVersion     = 0x4287
	mkvDocTypeReadVersion = 0x4285
	mkvVoid               = 0xEC
	mkvCRC32              = 0xBF

	mkvSegment       = 0x18538067
	mkvSeekHead      = 0x114D9B74
	mkvInfo          = 0x1549A966
	mkvTimecodeScale = 0x2AD7B1
	mkvDuration      = 0x4489
	mkvDateUTC       = 0x4461
	mkvMuxingApp     = 0x4D80
	mkvWritingApp    = 0x5741
	mkvSegmentUID    = 0x73A4
	mkvTitle         = 0x7BA9

	mkvTracks            = 0x1654AE6B
	mkvTrackEntry        = 0xAE
	mkvTrackNumber       = 0xD7
	mkvTrackUID          = 0x73C5
	mkvTrackType         = 0x83
	mkvFlagLacing        = 0x9C
	mkvFlagDefault       = 0x88
	mkvDefaultDuration   = 0x23E383
	mkvName              = 0x536E
	mkvLanguage          = 0x22B59C
	mkvCodecID           = 0x86
	mkvCodecPrivate      = 0x63A2
	mkvCodecName         = 0x258688
	mkvCodecDelay        = 0x56AA
	mkvSeekPreRoll       = 0x56BB
	mkvVideo             = 0xE0
	mkvPixelWidth        = 0xB0
	mkvPixelHeight       = 0xBA
	mkvAudio             = 0xE1
	mkvSamplingFrequency = 0xB5
	mkvChannels          = 0x9F
	mkvBitDepth          = 0x6264

	mkvTags           = 0x1254C367
	mkvTag            = 0x7373
	mkvTargets        = 0x63C0
	mkvTargetTypeVal  = 0x68CA
	mkvTagTrackUID    = 0x63C5
	mkvSimpleTag      = 0x67C8
	mkvTagName        = 0x45A3
	mkvTagLanguage    = 0x447A
	mkvTagDefault     = 0x4484
	mkvTagString      = 0x4487
	mkvTagBinary      = 0x4485
	mkvCues           = 0x1C53BB6B
	mkvChapters       = 0x1043A770
	mkvAttachments    = 0x1941A469
	mkvCluster        = 0x1F43B675
	mkvTimecode       = 0xE7
	mkvPosition       = 0xA7
	mkvPrevSize       = 0xAB
	mkvSimpleBlock    = 0xA3
	mkvBlockGroup     = 0xA0
	mkvBlock          = 0xA1
	mkvBlockDuration  = 0x9B
	mkvReferenceBlock = 0xFB
	mkvDiscardPadding = 0x75A2
	mkvBlockAdditions = 0x75A1
)

// Matroska track types.
const (
	mkvTrackVideo    = 1
	mkvTrackAudio    = 2
	mkvTrackSubtitle = 0x11
	mkvTrackMetadata = 0x21
)

// KVS fragment tags, as Kinesis Video Streams' GetMedia writes them.
const (
	TagFragmentNumber    = "AWS_KINESISVIDEO_FRAGMENT_NUMBER"
	TagServerTimestamp   = "AWS_KINESISVIDEO_SERVER_TIMESTAMP"
	TagProducerTimestamp = "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"
	// TagContinuationToken and TagMillisBehindNow are written by GetMedia.
	TagContinuationToken = "AWS_KINESISVIDEO_CONTINUATION_TOKEN"
	TagMillisBehindNow   = "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"
)
