#!/usr/bin/perl
# SOAP::Lite: one stub per service from its served ?wsdl (SOAP::Lite->service), its default
# envelope (soap:encodingStyle, xsi:type on simple values), runs the interop scenario and prints one
# JSON object (see tests/interop/interop_harness.py). SOAP::Lite reads no XSD, so the payload's
# elements are named with their namespaces here, as a SOAP::Lite user of a WCF service does.
# Usage: perl uws_client.pl SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE...
# A DEVICE is KIND:ID[+KIND:ID...]: one device named by each of its identifiers.
use strict;
use warnings;
use JSON::PP;
# Every request as sent, to report what SOAP::Lite's default envelope carried.
our @SENT;
use SOAP::Lite +trace => [transport => sub { push @SENT, $_[0]->content if UNIVERSAL::isa($_[0], 'HTTP::Request') }];

my ($session_wsdl, $carrier_wsdl, $user, $password, $account, $group, $field, $value, @devices) = @ARGV;
my $NS_V2 = 'http://nphase.com/unifiedwebservice/v2';
my $NS_CONTRACT = 'http://schemas.datacontract.org/2004/07/NPhase.UnifiedWebService.APIs.v2.Contract';
my ($NS_SESSION, $NS_CARRIER, $NS_COMMON) = map { "$NS_CONTRACT.$_" } qw(SessionService CarrierService Common);
my @steps;

# Elements of the WSDL's own namespace keep its prefix (v2), which the stubs declare and use.
sub element {
    my ($ns, $name, @children) = @_;
    my $data = SOAP::Data->name($name => @children)->uri($ns);
    return $ns eq $NS_V2 ? $data->prefix('v2') : $data;
}
sub nested { my ($ns, $name, @children) = @_; return element($ns, $name, \SOAP::Data->value(@children)) }

sub describe_som {
    my ($som) = @_;
    return 'SOAP fault [faultcode ' . ($som->faultcode // '') . '] ' . ($som->faultstring // '');
}

# The stubs return the SOAP::SOM (want_som): a fault is $som->fault, SOAP::Lite's own fault form.
sub call {
    my ($stub, $method, @parameters) = @_;
    my $som = $stub->$method(@parameters);
    die "no answer\n" unless ref $som;
    return $som;
}

sub step {
    my ($name, $body) = @_;
    my $som = eval { $body->() };
    if (!defined $som) {
        push @steps, { step => $name, ok => JSON::PP::false, error => "died: " . ($@ =~ s/\s+$//r) };
    } elsif ($som->fault) {
        push @steps, { step => $name, ok => JSON::PP::false, error => describe_som($som) };
    } else {
        my $request_id = $som->valueof('//Output/RequestId');
        push @steps, { step => $name, ok => JSON::PP::true, (defined $request_id ? (request_id => $request_id) : ()) };
    }
    return $som;
}

# A step that must end in a SOAP fault; its faultcode is what the test checks.
sub expect_fault {
    my ($name, $body) = @_;
    my $som = eval { $body->() };
    if (!defined $som) {
        push @steps, { step => $name, ok => JSON::PP::false, error => "died: " . ($@ =~ s/\s+$//r) };
    } elsif (!$som->fault) {
        push @steps, { step => $name, ok => JSON::PP::false, error => 'no fault' };
    } else {
        push @steps, { step => $name, ok => JSON::PP::true, fault_type => ref($som) . '->fault',
                       fault_code => $som->faultcode, fault_string => $som->faultstring };
    }
}

sub device_list {
    my @collections = map {
        my @ids = map {
            my ($kind, $id) = split /:/, $_, 2;
            nested($NS_COMMON, 'DeviceIdentifier', element($NS_COMMON, Kind => $kind),
                   element($NS_COMMON, Identifier => $id));
        } split /\+/, $_;
        nested($NS_COMMON, 'DeviceIdentifierCollection', nested($NS_COMMON, 'DeviceIdentifiers', @ids));
    } @_;
    return nested($NS_CARRIER, 'DeviceList', @collections);
}

sub token_header { return SOAP::Header->name(token => $_[0])->uri($NS_V2)->prefix('v2') }
sub action { return element($NS_CARRIER, $_[0] => '') }
sub change {
    my ($carrier, $token, @input) = @_;
    return call($carrier, 'ChangeDeviceState', nested($NS_V2, 'Input', @input), token_header($token));
}

my ($session, $carrier, $token);
my $loaded = eval {
    $session = SOAP::Lite->service($session_wsdl)->want_som(1);
    $carrier = SOAP::Lite->service($carrier_wsdl)->want_som(1);
    1;
};
push @steps, $loaded ? { step => 'wsdl', ok => JSON::PP::true }
                     : { step => 'wsdl', ok => JSON::PP::false, error => "died: " . ($@ =~ s/\s+$//r) };
if ($loaded) {
    my $login = step('login', sub {
        call($session, 'LogIn', nested($NS_V2, 'Input', element($NS_SESSION, Username => $user),
                                       element($NS_SESSION, Password => $password)));
    });
    $token = $login && !$login->fault ? $login->valueof('//Output/SessionToken') : '';
    for my $action (qw(Suspend Restore)) {
        step(lc($action) . '-device-list', sub { change($carrier, $token, device_list(@devices), action($action)) });
    }
    for my $action (qw(Suspend Restore)) {
        step(lc($action) . '-account-group-field', sub {
            change($carrier, $token, element($NS_CARRIER, DeviceGroupName => $group),
                   element($NS_CARRIER, AccountName => $account),
                   nested($NS_CARRIER, 'DeviceCustomFieldFilter', element($NS_COMMON, Name => $field),
                          element($NS_COMMON, Value => $value)),
                   action($action));
        });
    }
    expect_fault('fault-bad-token', sub {
        change($carrier, 'not-a-session-token', device_list(@devices), action('Suspend'));
    });
    expect_fault('fault-unknown-kind', sub { change($carrier, $token, device_list('FOO:123'), action('Suspend')) });
    step('logout', sub {
        call($session, 'LogOut', nested($NS_V2, 'Input', element($NS_SESSION, SessionToken => $token)),
             token_header($token));
    });
    expect_fault('fault-after-logout', sub { change($carrier, $token, device_list(@devices), action('Restore')) });
}
my %wire = (requests => scalar @SENT,
            with_encoding_style => scalar(grep { /<soap:Envelope[^>]* soap:encodingStyle="/ } @SENT),
            with_xsi_type => scalar(grep { / xsi:type="xsd:/ } @SENT));
print JSON::PP->new->canonical->encode({ client => "SOAP::Lite $SOAP::Lite::VERSION (Perl $^V)", steps => \@steps,
                                         wire => \%wire }), "\n";
